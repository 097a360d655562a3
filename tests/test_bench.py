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
        "--json", str(out), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["rows"]]
    assert names[:4] == ["stdlib-membio", "edge-inmemory", "edge-tcp", "asyncio-tcp"]
    assert names[-2:] == ["membio-parallel-2", "edge-tcp-workers-2"]
    assert report["machine_scaling"] > 0 and report["workers_scaling"] > 0
    for row in report["rows"]:
        assert row["handshakes_per_s"] > 0 and len(row["runs"]) == 1
        assert row["ratio_to_stdlib_membio"] > 0
    tcp_rows = [row for row in report["rows"]
                if row["name"] not in (*names[:2], "membio-parallel-2")]
    for row in tcp_rows:  # what each TCP round cost the server, and how busy the load was
        assert 0 < row["load_generator_busy"] and row["server_cpu_ms_per_handshake"] > 0
    assert all("load_generator_busy" not in row for row in report["rows"]
               if row["name"] not in [r["name"] for r in tcp_rows])
    baseline = report["rows"][0]
    assert baseline["ratio_to_stdlib_membio"] == 1.0
    assert set(report["ca_count"]) == {"1", "5", "50"}
    assert report["resumption"]["resumed_per_s"] > 0
    assert report["settings"]["key"] == "ec" and report["settings"]["tls"] == "1.3"


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
    assert set(report["ca_count"]) == {"1", "5", "50"}
    assert "resumption" not in report and "workers_scaling" not in report
    assert "machine_scaling" not in report
    refused = CliRunner().invoke(main, ["bench", "--only", "edge-tcp,nonsense"])
    assert refused.exit_code == 2 and "unknown nonsense" in refused.output
