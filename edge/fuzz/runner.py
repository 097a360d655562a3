"""A fuzzing run outside pytest: N generated chains through both oracles, tallied by family.

What `edge fuzz` needs: `run(max_examples, seed=..., save_dir=...)` returns a `FuzzReport` with
the count per family (and "agree"), the findings saved as reproducible cases, and the rate. A
finding is an unclassified disagreement, a chain under a foreign key that verified anywhere (a
tenant-isolation break), or an edge reason other than the generator's model expected.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path

import attrs
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from edge.fuzz import strategies as cs
from edge.fuzz.chains import Case, warm_pool
from edge.fuzz.oracle import UNCLASSIFIED, Comparison, compare, save_case

AGREE = "agree"


@attrs.frozen
class Finding:
    kind: str  # "unclassified" | "isolation" | "model"
    description: str
    saved: Path | None


@attrs.frozen
class FuzzReport:
    examples: int
    seconds: float
    counts: dict[str, int]  # "agree" and each family seen, "unclassified" included
    findings: tuple[Finding, ...]

    @property
    def chains_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return not self.findings


def _findings(comparison: Comparison) -> list[tuple[str, str]]:
    case, found = comparison.case, []
    if comparison.family == UNCLASSIFIED:
        found.append(("unclassified", f"edge {comparison.edge.reason.value}, pyca "
                      f"{'OK' if comparison.pyca.verified else comparison.pyca.error}"))
    if case.foreign and (comparison.edge.verified or comparison.pyca.verified):
        found.append(("isolation", "a chain under a foreign key verified"))
    if case.expected is not None and comparison.edge.reason is not case.expected:
        found.append(("model", f"expected {case.expected.value}, "
                      f"edge {comparison.edge.reason.value}"))
    return found


def run(
    max_examples: int = 500,
    *,
    seed: int | None = None,
    save_dir: str | Path | None = None,
    strategy: st.SearchStrategy[Case] | None = None,
    max_saved: int = 50,
    progress: Callable[[int], None] | None = None,
) -> FuzzReport:
    """Generate `max_examples` cases (default strategy: `strategies.chains()`), compare both
    verdicts on each, save up to `max_saved` findings under `save_dir`."""
    warm_pool()
    counts: collections.Counter[str] = collections.Counter()
    findings: list[Finding] = []
    directory = None if save_dir is None else Path(save_dir)

    @settings(
        max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy or cs.chains())
    def one(case: Case) -> None:
        comparison = compare(case)
        counts[comparison.family or AGREE] += 1
        for kind, text in _findings(comparison):
            saved = None
            if directory is not None and len(findings) < max_saved:
                saved = save_case(directory / f"{kind}-{len(findings) + 1:03d}", comparison)
            findings.append(Finding(kind, f"{case.describe()}: {text}", saved))
        if progress is not None:
            progress(sum(counts.values()))

    if seed is not None:
        one = hypothesis_seed(seed)(one)
    started = time.perf_counter()
    one()
    seconds = time.perf_counter() - started
    return FuzzReport(sum(counts.values()), seconds, dict(counts.most_common()), tuple(findings))
