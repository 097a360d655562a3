"""`edge fuzz` as a user runs it: a small budget, the JSON it promises, its exit status."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edge.cli import main


def test_edge_fuzz_writes_the_promised_json(tmp_path):
    out = tmp_path / "fuzz.json"
    result = CliRunner().invoke(main, [
        "fuzz", "--max-examples", "60", "--seed", "3", "--json", str(out),
        "--out", str(tmp_path / "cases"),
    ])
    report = json.loads(out.read_text())
    assert report["examples"] == 60
    assert report["agree"] + sum(report["disagreements"].values()) == 60
    assert report["unclassified"] == report["disagreements"].get("unclassified", 0)
    assert result.exit_code == (1 if report["findings"] else 0), result.output
    for finding in report["findings"]:  # each one saved as a reproducible case
        assert (tmp_path / "cases").exists() and finding["saved"]


def test_edge_fuzz_refuses_a_bad_budget():
    result = CliRunner().invoke(main, ["fuzz", "--budget", "soon"])
    assert result.exit_code == 2 and "--budget" in result.output
