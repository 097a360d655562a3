"""`edge fuzz`: generated chains through both oracles until a budget runs out, with progress.

Batches of examples run one after another (each with its own seed derived from `--seed`) until
`--max-examples` or `--budget` is reached, whichever comes first; findings are saved as
reproducible cases under `--out`. Exit status 1 when anything was found.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from edge.fuzz.oracle import UNCLASSIFIED
from edge.fuzz.runner import AGREE, Finding, run

BATCH = 100


def main(*, budget: dt.timedelta | None, max_examples: int, seed: int, out: Path | None,
         json_path: Path | None, quiet: bool = False) -> int:
    console = Console()
    deadline = None if budget is None else time.monotonic() + budget.total_seconds()
    counts: collections.Counter[str] = collections.Counter()
    findings: list[Finding] = []
    seconds, batch = 0.0, 0
    with Progress(TextColumn("fuzzing"), BarColumn(), TextColumn("{task.fields[info]}"),
                  console=console, transient=True, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task("fuzz", total=max_examples, info="")
        while sum(counts.values()) < max_examples and (deadline is None
                                                       or time.monotonic() < deadline):
            size = min(BATCH, max_examples - sum(counts.values()))
            report = run(size, seed=seed + batch, save_dir=out,
                         max_saved=max(50 - len(findings), 0))
            if not report.examples:
                break  # nothing more can be generated: stop rather than spin
            counts.update(report.counts)
            findings.extend(report.findings)
            seconds += report.seconds
            batch += 1
            done = sum(counts.values())
            bar.update(task, completed=done,
                       info=f"{done} chains, {len(findings)} findings, "
                            f"{done / seconds if seconds else 0:.0f}/s")
    examples = sum(counts.values())
    data = {
        "examples": examples,
        "seconds": round(seconds, 2),
        "chains_per_second": round(examples / seconds, 1) if seconds else 0.0,
        "agree": counts.get(AGREE, 0),
        "disagreements": {k: v for k, v in sorted(counts.items()) if k != AGREE},
        "unclassified": counts.get(UNCLASSIFIED, 0),
        "findings": [
            {"kind": f.kind, "description": f.description,
             "saved": None if f.saved is None else str(f.saved)}
            for f in findings
        ],
    }
    if not quiet:
        console.print(f"{examples} chains in {seconds:.1f} s ({data['chains_per_second']}/s): "
                      f"{data['agree']} agree, disagreements by family:")
        for family, count in data["disagreements"].items():
            console.print(f"  {family}: {count}", markup=False)
        for finding in findings:
            where = f" (saved in {finding.saved})" if finding.saved else ""
            console.print(f"  FINDING [{finding.kind}] {finding.description}{where}", markup=False)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 1 if findings else 0
