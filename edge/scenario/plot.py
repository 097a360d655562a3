"""`edge run --plot`: requests per decision over simulated time, timeline actions marked.

matplotlib is an optional extra (`pip install '.[plot]'` in edge's source tree, or
`pip install matplotlib`); nothing else imports this module.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from edge.scenario.runner import RunResult  # noqa: E402

COLOURS = {"allow": "tab:green", "log": "tab:orange", "block": "tab:red", "skip": "tab:blue",
           "bad_request": "tab:gray", "misdirected": "tab:purple", "unavailable": "tab:brown"}


def draw(result: RunResult, path: Path) -> None:
    tally = result.tally
    size = tally.bucket_seconds / 60
    buckets = sorted({bucket for bucket, _ in tally.series}) or [0]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    for decision, colour in COLOURS.items():
        counts = [tally.series.get((b, decision), 0) for b in buckets]
        if any(counts):
            axes.plot([b * size for b in buckets], counts, label=decision, color=colour)
    for index, entry in enumerate(result.scenario.timeline):
        minute = entry.at.total_seconds() / 60
        axes.axvline(minute, color="black", alpha=0.3, linestyle="--")
        label = entry.phase or entry.action.value
        axes.annotate(label, (minute, 1), xycoords=("data", "axes fraction"), rotation=90,
                      va="top", ha="right", fontsize=8)
    axes.set_xlabel("simulated minutes")
    axes.set_ylabel(f"requests per {size:g} min")
    axes.set_title(result.scenario.meta.name)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
