"""`edge run`: load, run, report, write the outputs; the exit status says how it went."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from edge.scenario.durations import format_duration
from edge.scenario.loader import ScenarioError, load
from edge.scenario.report import render, summarize
from edge.scenario.runner import Runner, ScenarioFailed

OK, EXPECTATION_FAILED, INVALID = 0, 1, 2


def main(path: Path, *, events=None, summary=None, plot=None, seed=None, quiet=False) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped or captured: wide enough for the tables
    try:
        scenario, base = load(path)
    except ScenarioError as err:
        _error(str(err))
        return INVALID
    if plot is not None:
        try:
            import matplotlib  # noqa: F401  (only: is it installed?)
        except ImportError:
            _error("--plot needs matplotlib: pip install matplotlib (or, in edge's source tree, "
                   "pip install '.[plot]')")
            return INVALID
    show_progress = not quiet and console.is_terminal
    with contextlib.ExitStack() as stack:
        events_file = stack.enter_context(open(events, "w")) if events else None
        progress = stack.enter_context(_progress(console, scenario)) if show_progress else None
        runner = Runner(scenario, base, seed=seed, events=events_file, progress=progress)
        try:
            result = runner.run()
        except ScenarioFailed as err:
            _error(f"{path}: {err}")
            return EXPECTATION_FAILED
    data = summarize(result)
    if not quiet:
        render(data, console)
    if summary:
        Path(summary).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if plot:
        from edge.scenario.plot import draw

        draw(result, Path(plot))
    failed = [item for item in data["expectations"] if not item["passed"]]
    if failed and quiet:
        for item in failed:
            _error(f"{path}: FAIL {item['description']} (actual {item['actual']:g})")
    return EXPECTATION_FAILED if failed else OK


def _error(text: str) -> None:
    """Errors go to stderr unwrapped: a key path or a value must stay on one line."""
    print(text, file=sys.stderr)


@contextlib.contextmanager
def _progress(console: Console, scenario):
    total = scenario.meta.duration.total_seconds()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=True,
    ) as bar:
        task = bar.add_task(scenario.meta.name, total=total, info="")

        def update(simulated: dt.timedelta, requests: int) -> None:
            bar.update(task, completed=simulated.total_seconds(),
                       info=f"+{format_duration(simulated)} simulated, {requests} requests")

        yield update

