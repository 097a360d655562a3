"""The shipped scenarios run and their expectations hold; `edge run` as a user calls it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.scenario.loader import load
from edge.scenario.report import summarize
from edge.scenario.runner import Runner

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def run(path: Path, **options):
    scenario, base = load(path)
    return Runner(scenario, base, **options).run()


def test_the_six_scenarios_are_shipped():
    assert {p.stem for p in SHIPPED} >= {
        "byo-ca-rollout", "intermediate-rotation", "expiry-cliff", "propagation-skew",
        "tenant-isolation", "managed-ca",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_meets_its_expectations(path):
    result = run(path)
    summary = summarize(result)
    assert summary["expectations"], "a shipped scenario must expect something"
    failed = [e for e in summary["expectations"] if not e["passed"]]
    assert not failed, failed
    # every connection a client attempted is in the tally, with the same outcome the client saw
    for fleet, outcomes in result.client_outcomes.items():
        assert sum(outcomes.values()) == result.tally.sum("connections", fleet=fleet) > 0
        assert outcomes.get("ok", 0) == (
            result.tally.sum("connections", fleet=fleet)
            - result.tally.sum("failed_handshakes", fleet=fleet)
        )
    assert not result.tally.totals.duplicates


def test_same_file_and_seed_give_the_same_totals():
    path = SCENARIOS / "tenant-isolation.toml"
    first, second = (summarize(run(path)) for _ in range(2))
    for summary in (first, second):
        summary.pop("real_seconds")
    assert first == second
    other = summarize(run(path, seed=12345))
    assert other["seed"] == 12345


def test_edge_run_writes_events_summary_and_plot(tmp_path):
    events, summary, plot = tmp_path / "e.jsonl", tmp_path / "s.json", tmp_path / "p.png"
    result = CliRunner().invoke(main, [
        "run", str(SCENARIOS / "managed-ca.toml"), "--events", str(events),
        "--summary", str(summary), "--plot", str(plot),
    ])
    assert result.exit_code == 0, result.output
    assert "Rollout verdict" in result.output and "PASS" in result.output
    data = json.loads(summary.read_text())
    for key in ("scenario", "seed", "expectations", "totals", "by_fleet", "phases"):
        assert key in data
    for key in ("connections", "requests", "verified", "blocked", "would_block", "by_reason"):
        assert key in data["totals"]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(lines) == data["totals"]["connections"] + data["totals"]["requests"]
    assert {line["fleet"] for line in lines} == {"laptops", "stolen-laptop"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_expectation_exits_1(tmp_path):
    text = (SCENARIOS / "managed-ca.toml").read_text().replace(
        'description = "the other laptops are never blocked"\nfleet = "laptops"\nmetric = "blocked"\nop = "=="\nvalue = 0',
        'description = "the other laptops are never blocked"\nfleet = "laptops"\nmetric = "blocked"\nop = ">"\nvalue = 0',
    )
    path = tmp_path / "managed.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["run", str(path), "--quiet"])
    assert result.exit_code == 1


def test_an_invalid_file_exits_2_naming_file_and_key(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text((SCENARIOS / "managed-ca.toml").read_text().replace("clients = 6", "clients = 0"))
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output and "fleets[0].clients:" in result.output


def test_a_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "cannot read the file" in result.output


REFUSED = """
[meta]
name = "refused"
start = 2026-01-01T00:00:00Z
duration = "10m"
[pki.root]
subject = { CN = "Root" }
[[tenants]]
name = "t"
zones = ["t.example"]
[[timeline]]
at = "0s"
action = "upload_ca"
tenant = "t"
ca = "root"
[[timeline]]
at = "1m"
action = "associate"
zone = "t.example"
hostnames = ["api.t.example"]
ca = "root"
[[timeline]]
at = "2m"
action = "delete_ca"
tenant = "t"
ca = "root"
"""


@pytest.mark.parametrize("fail", [False, True])
def test_a_refused_action_is_reported_or_fails_the_run(tmp_path, fail):
    path = tmp_path / "refused.toml"
    settings = "[settings]\nfail_on_rejected_action = true\n" if fail else ""
    path.write_text(REFUSED + settings)
    result = CliRunner().invoke(main, ["run", str(path), "--summary", str(tmp_path / "s.json")])
    assert "Traceback" not in result.output
    if fail:
        assert result.exit_code == 1
        assert "timeline[2] (delete_ca) was refused: 1471" in result.output
    else:
        assert result.exit_code == 0
        (refused,) = json.loads((tmp_path / "s.json").read_text())["rejected_actions"]
        assert refused["code"] == 1471 and refused["action"] == "delete_ca"
