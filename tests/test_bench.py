"""`edge bench` runs end to end and writes well-formed JSON. No timing is asserted here:
throughput is measured by the bench itself, as ratios within one run."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edge.cli import main


def test_edge_bench_runs_every_row_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [
        "bench", "--seconds", "0.5", "--rounds", "1", "--workers", "2", "--concurrency", "4",
        "--load-processes", "2", "--json", str(out), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["rows"]]
    assert names[:6] == ["stdlib-membio", "edge-inmemory", "edge-transport", "trio-sslstream",
                         "edge-tcp", "asyncio-tcp"]
    assert names[-2:] == ["membio-parallel-2", "edge-tcp-workers-2"]
    assert report["machine_scaling"] > 0 and report["workers_scaling"] > 0
    bound = report["workers_bound"]
    assert bound["handshakes_per_s"] > 0 and bound["ratio_to_edge_tcp"] > 0 and bound["cpus"] >= 1
    for row in report["rows"][1:]:
        assert row["handshakes_per_s"] > 0 and len(row["runs"]) == 1
        assert row["ratio_to_stdlib_membio"] > 0
    # the baseline before the first row and after each row: every row's ratio is to the two
    # runs around it
    assert len(report["rows"][0]["runs"]) == len(report["rows"])
    tcp_rows = [row for row in report["rows"]
                if row["name"] not in (*names[:4], "membio-parallel-2")]
    for row in tcp_rows:  # what each TCP round cost the server and the load generator
        assert 0 < row["load_generator_busy"] and row["server_cpu_ms_per_handshake"] > 0
        assert row["load_cpu_ms_per_handshake"] > 0
    assert all("load_generator_busy" not in row for row in report["rows"]
               if row["name"] not in [r["name"] for r in tcp_rows])
    baseline = report["rows"][0]
    assert baseline["ratio_to_stdlib_membio"] == 1.0
    for rates in report["ca_count"].values():
        assert set(rates) == {"1", "5", "50"} and all(rate > 0 for rate in rates.values())
    assert set(report["ca_count"]) == {"raw_loop", "edge_inmemory"}
    for ratios in report["ca_count_ratio_to_1"].values():
        assert set(ratios) == {"5", "50"} and all(ratio > 0 for ratio in ratios.values())
    assert report["resumption"]["resumed_per_s"] > 0
    for cost in report["client_auth"].values():  # mutual TLS beside server authentication only
        assert cost["mutual_per_s"] > 0 and cost["server_auth_only_per_s"] > 0
        assert cost["ratio"] > 0
    assert set(report["client_auth"]) == {"raw_loop", "edge_inmemory"}
    assert report["settings"]["key"] == "ec" and report["settings"]["tls"] == "1.3"
    assert report["settings"]["load_processes"] == 2


def test_edge_bench_refuses_nonsense_options():
    result = CliRunner().invoke(main, ["bench", "--seconds", "0"])
    assert result.exit_code == 2 and "--seconds" in result.output


def test_edge_bench_only_measures_what_was_asked(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [
        "bench", "--seconds", "0.3", "--rounds", "1", "--only", "cas", "--json", str(out),
        "--quiet",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [row["name"] for row in report["rows"]] == ["stdlib-membio"]
    assert set(report["ca_count"]["edge_inmemory"]) == {"1", "5", "50"}
    assert "resumption" not in report and "workers_scaling" not in report
    assert "client_auth" not in report
    assert "machine_scaling" not in report
    refused = CliRunner().invoke(main, ["bench", "--only", "edge-tcp,nonsense"])
    assert refused.exit_code == 2 and "unknown nonsense" in refused.output


def test_workers_bound_is_what_the_shared_cores_allow():
    from edge.bench.run import Row, workers_bound

    edge_tcp = Row("edge-tcp", runs=[500.0], server_cpu_ms=[1.0], load_cpu_ms=[1.0])
    # two workers could do 2,000/s, but with the load on the same 2 cores only 2 / 2 ms
    assert workers_bound(edge_tcp, 2, 2) == {"handshakes_per_s": 1000.0,
                                             "ratio_to_edge_tcp": 2.0, "cpus": 2}
    # one worker on 4 cores: the worker itself is the limit
    assert workers_bound(edge_tcp, 1, 4)["handshakes_per_s"] == 1000.0
    # eight workers on eight cores: the load generator, one process at 2 ms, does 500/s
    slow_load = Row("edge-tcp", runs=[400.0], server_cpu_ms=[1.0], load_cpu_ms=[2.0])
    assert workers_bound(slow_load, 8, 8) == {"handshakes_per_s": 500.0,
                                              "ratio_to_edge_tcp": 1.25, "cpus": 8}
    # as many load processes as workers: the cores are the limit again
    assert workers_bound(slow_load, 8, 8, load_processes=8)["handshakes_per_s"] == 2666.7
    assert workers_bound(Row("edge-tcp", runs=[500.0]), 2, 2) is None  # no CPU figures


def test_load_processes_share_the_connections():
    from edge.bench.tcp import shares

    assert shares(16, 3) == [6, 5, 5] and shares(2, 2) == [1, 1] and shares(5, 1) == [5]
    refused = CliRunner().invoke(main, ["bench", "--concurrency", "2", "--load-processes", "3"])
    assert refused.exit_code == 2 and "--load-processes" in refused.output


def test_edge_bench_transport_rows_come_with_the_baseline_only(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [
        "bench", "--seconds", "0.3", "--rounds", "1", "--only", "transport", "--json", str(out),
        "--quiet",
    ])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [row["name"] for row in rows] == ["stdlib-membio", "edge-transport", "trio-sslstream"]
    assert all(row["handshakes_per_s"] > 0 for row in rows)


def test_only_takes_the_row_names_the_table_prints():
    import click
    import pytest

    from edge.cli import _bench_sections

    assert _bench_sections("edge-transport,trio-sslstream", 2) == {"transport"}
    assert _bench_sections("membio-parallel-2, edge-tcp-workers-2", 2) == {"edge-tcp-workers"}
    assert _bench_sections("stdlib-membio", 2) == frozenset()  # the baseline alone
    with pytest.raises(click.BadParameter, match="needs --workers 7"):
        _bench_sections("edge-tcp-workers-7", 2)
    with pytest.raises(click.BadParameter, match="unknown nonsense"):
        _bench_sections("cas,nonsense", 2)


class _Fake:
    """Deterministic rates handed out in order, one per call."""

    def __init__(self, *rates: float) -> None:
        self.rates = list(rates)

    def __call__(self, *_args, **_kwargs) -> float:
        return self.rates.pop(0)


def _measured(monkeypatch, measures: dict, **options) -> dict:
    """measure_all over deterministic measures, two rounds, nothing real measured."""
    from edge.bench import run

    monkeypatch.setattr(run, "_rows", lambda *_args: dict(measures))
    monkeypatch.setattr(run.inprocess, "membio_rate", lambda *_args: 1.0)  # the warm-up
    material = type("M", (), {"key_type": "ec", "tls": "1.3", "server_context": lambda self: None,
                              "client_context": lambda self: None})()
    return run.measure_all(material, seconds=1, rounds=2, concurrency=1, workers=2,
                           only=frozenset({"edge-inmemory"}), **options)


def test_each_ratio_is_to_the_raw_loop_around_its_run(monkeypatch):
    """Two rounds of two rows with the raw loop drifting: every ratio is to the mean of the
    baseline runs just before and after, and the figure is the median over the rounds."""
    from edge.bench import run

    baseline = _Fake(100, 200, 100,  # round 1: before a, after a (= before b), after b
                     400, 400, 200)  # round 2
    a, b = _Fake(150, 200), _Fake(75, 90)
    report = _measured(monkeypatch, {run.BASELINE: baseline, "edge-inmemory": a,
                                     "edge-tcp-workers-2": b})
    rows = {row["name"]: row for row in report["rows"]}
    assert rows[run.BASELINE]["runs"] == [100, 200, 100, 400, 400, 200]
    # a: 150 / 150 = 1.0, then 200 / 400 = 0.5; b: 75 / 150 = 0.5, then 90 / 300 = 0.3
    assert rows["edge-inmemory"]["ratio_to_stdlib_membio"] == 0.75
    assert rows["edge-tcp-workers-2"]["ratio_to_stdlib_membio"] == 0.4
    assert rows[run.BASELINE]["ratio_to_stdlib_membio"] == 1.0
    assert baseline.rates == a.rates == b.rates == []  # nothing measured twice or left out


def test_workers_scaling_is_paired_per_round_and_bounded_by_the_cores_measured(monkeypatch):
    from edge.bench import run, tcp

    def tcp_row(*rates: float):
        results = [tcp.Measured(rate, 1.0, 1.0, 1.0) for rate in rates]
        return lambda: results.pop(0)

    monkeypatch.setattr(run, "usable_cpus", lambda: 2)
    report = _measured(monkeypatch, {
        run.BASELINE: _Fake(*[100.0] * 8),
        "edge-tcp": tcp_row(100, 400),
        "membio-parallel-2": _Fake(120, 120),  # the two cores give 1.2 cores' worth
        "edge-tcp-workers-2": tcp_row(150, 200),
    }, load_processes=2)
    # per round: 150 / 100 = 1.5 and 200 / 400 = 0.5 (a ratio of medians would give 0.7)
    assert report["workers_scaling"] == 1.0
    assert report["machine_scaling"] == 1.2
    # 1 ms of server and of load CPU per handshake, 1.2 cores: 1.2 / 2 ms = 600/s
    assert report["workers_bound"]["handshakes_per_s"] == 600.0
    assert report["workers_bound"]["cpus"] == 1.2


def test_extras_are_paired_per_round():
    """Resumption and CA-count ratios: the median of each round's ratio, not a ratio of
    medians (here 1.0 against 2.0)."""
    from edge.bench.run import _paired

    assert _paired({"cas-5": [1.0, 4.0, 10.0], "cas-1": [2.0, 1.0, 10.0]}, "cas-5", "cas-1") == 1.0
