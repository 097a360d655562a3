"""The rehearsal's report: tables per phase and fleet, one verdict per hostname, expectations.

`summarize()` is pure (a run result in, a JSON-ready dict out); `render()` draws that dict on a
terminal with rich. Both speak the words of a rollout: verified, blocked, would block.
"""

from __future__ import annotations

import collections

from rich.console import Console
from rich.table import Table

from edge.scenario.durations import format_duration
from edge.scenario.expectations import check
from edge.scenario.runner import RunResult
from edge.scenario.tally import Tally

COUNTERS = ("connections", "requests", "verified", "blocked", "would_block", "logged")


def _counters(tally: Tally, phases=None, **where) -> dict:
    out = {name: tally.sum(name, phases=phases, **where) for name in COUNTERS}
    out["failed_handshakes"] = tally.sum("failed_handshakes", phases=phases, **where)
    out["by_reason"] = dict(sorted(tally.reasons("requests", phases=phases, **where).items()))
    return out


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "0 %"


def verdicts(tally: Tally, phase: str) -> list[str]:
    """One sentence per hostname, from the last phase: who enforcement blocks or would block."""
    sentences = []
    for host in tally.values("host"):
        if not host:
            continue
        parts, clear, enforced = [], [], False
        for fleet in tally.values("fleet"):
            where = dict(phases=[phase], host=host, fleet=fleet)
            requests = tally.sum("requests", **where)
            if not requests:
                continue
            failing = tally.reasons("would_block", **where)
            total = sum(failing.values())
            if not total:
                clear.append(fleet)
                continue
            enforced = enforced or tally.sum("blocked", **where) > 0
            why = ", ".join(f"{reason} {_percent(n, requests)}" for reason, n in failing.most_common())
            parts.append(f"{_percent(total, requests)} of fleet {fleet}: {why}")
        if not parts and not clear:
            continue
        if parts:
            verb = "enforcement blocks" if enforced else "enforcing now would block"
            text = f"{host}: {verb} " + "; ".join(parts)
            if clear:
                text += f" (no one in {', '.join(clear)})"
        else:
            text = f"{host}: no request of {', '.join(clear)} is or would be blocked by the rules"
        sentences.append(text + ".")
    return sentences


def _rollout_verdicts(tally: Tally, phases: list[str]) -> list[str]:
    """The rehearsal's answer, from the last phase whose rules logged but did not block (the one
    to read before enforcing), then the final phase's."""
    rehearsed = [p for p in phases if tally.sum("logged", phases=[p]) and not
                 tally.sum("blocked", phases=[p])]
    shown = [rehearsed[-1]] if rehearsed else []
    if phases[-1] not in shown:
        shown.append(phases[-1])
    return [f"[{phase}] {sentence}" for phase in shown for sentence in verdicts(tally, phase)]


def summarize(result: RunResult) -> dict:
    tally, phases = result.tally, result.phases
    checked = check(result.scenario.expect, tally, phases)
    fleets = {f.name for f in result.scenario.fleets}
    return {
        "scenario": result.scenario.meta.name,
        "seed": result.seed,
        "start": result.scenario.meta.start.isoformat(),
        "duration": format_duration(result.scenario.meta.duration),
        "real_seconds": round(result.real_seconds, 3),
        "expectations": [
            {"description": c.description, "passed": c.passed, "actual": c.actual}
            for c in checked
        ],
        "totals": _counters(tally),
        "by_fleet": {
            fleet: {**_counters(tally, fleet=fleet), "client_outcomes": result.client_outcomes[fleet]}
            for fleet in sorted(fleets)
        },
        "phases": [
            {
                "name": name,
                "start": format_duration(at),
                "by_fleet": {
                    fleet: _counters(tally, phases=[name], fleet=fleet) for fleet in sorted(fleets)
                },
                **_counters(tally, phases=[name]),
            }
            for name, at in phases
        ],
        "verdicts": _rollout_verdicts(tally, [name for name, _ in phases]),
        "rejected_actions": [
            {"timeline": r.index, "at": format_duration(r.at), "action": r.action,
             "code": r.code, "message": r.message}
            for r in result.rejected
        ],
    }


def _failures(by_reason: dict) -> str:
    bad = collections.Counter({r: n for r, n in by_reason.items() if r not in ("OK",)})
    return ", ".join(f"{reason} {n}" for reason, n in bad.most_common(4)) or "-"


def render(summary: dict, console: Console) -> None:
    console.print(
        f"[bold]{summary['scenario']}[/bold]  seed {summary['seed']}, "
        f"{summary['duration']} simulated in {summary['real_seconds']:.1f} s"
    )
    table = Table(title="Requests per phase and fleet", show_lines=False)
    for column in ("phase", "fleet", "requests", "verified", "blocked", "would block", "failures"):
        table.add_column(column, justify="right" if column not in ("phase", "fleet", "failures")
                         else "left")
    for phase in summary["phases"]:
        for fleet, row in phase["by_fleet"].items():
            if not row["requests"] and not row["connections"]:
                continue
            table.add_row(
                f"{phase['name']} (+{phase['start']})", fleet, str(row["requests"]),
                str(row["verified"]), str(row["blocked"]), str(row["would_block"]),
                _failures(row["by_reason"]),
            )
    console.print(table)
    if summary["rejected_actions"]:
        console.print("[bold]Refused by the control plane[/bold]")
        for refused in summary["rejected_actions"]:
            console.print(
                f"  timeline[{refused['timeline']}] at +{refused['at']} {refused['action']}: "
                f"{refused['code']} {refused['message']}"
            )
    console.print("[bold]Rollout verdict[/bold]")
    for sentence in summary["verdicts"] or ["no requests reached an mTLS hostname."]:
        console.print(f"  {sentence}", markup=False)
    if summary["expectations"]:
        console.print("[bold]Expectations[/bold]")
        for item in summary["expectations"]:
            mark = "[green]PASS[/green]" if item["passed"] else "[red]FAIL[/red]"
            console.print(f"  {mark} {item['description']}  (actual {item['actual']:g})")
