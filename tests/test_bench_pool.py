"""`geokernel bench --pool N`: the pool rows, end to end through jupyter_client (tiny N)."""
from __future__ import annotations

import json
import os

from geokernel.bench import main
from geokernel.bench.pool import smaps_rollup_kb, table
from geokernel.pool import client as pool


def test_bench_pool_rows_end_to_end(tmp_path, capsys):
    out = tmp_path / "pool.json"
    rc = main(["--pool", "2", "--quick", "--kernels", "python3,geokernel-pool,no-such-kernel",
               "--json", str(out)])
    assert rc == 1  # the missing kernel is reported as failed; the others are measured
    text = capsys.readouterr().out
    for row in ("start -> ready through jupyter_client", "idle: PSS per kernel",
                "after completions: PSS per kernel", "zygote start + warm-up"):
        assert row in text
    data = json.loads(out.read_text())["results"]
    assert "error" in data["no-such-kernel"]
    for name in ("python3", "geokernel-pool"):
        r = data[name]
        assert r["n"] == 2 and len(r["_ready_ms"]) == 2
        assert r["pss_per_kernel_idle_mb"] > 0 and r["rss_per_kernel_mb"] > 0
        assert r["complete_ms"] > 0 and r["fit_512mib"] >= 1
    assert data["python3"]["zygote_pss_mb"] is None
    assert data["geokernel-pool"]["zygote_pss_mb"] > 0  # the zygote is in the sum
    assert pool.zygotes() == []  # the bench ended its zygote


def test_bench_pool_refuses_a_bad_count(capsys):
    assert main(["--pool", "0"]) == 2
    assert "--pool needs N >= 1" in capsys.readouterr().err


def test_smaps_rollup_reads_pss_and_rss():
    mine = smaps_rollup_kb(os.getpid())
    assert 0 < mine["Pss"] <= mine["Rss"]
    assert smaps_rollup_kb(2**22 + 12345) == {}  # no such process


def test_table_gives_ratios_against_the_first_kernel():
    results = {"a": {"start_ready_ms": 100.0, "rss_per_kernel_idle_mb": 50.0},
               "b": {"start_ready_ms": 10.0, "pss_per_kernel_idle_mb": 12.5}}
    text = table(results, ["a", "b"], 20)
    assert "10 (0.10x)" in text
    assert "idle: b PSS per kernel = 0.25x a's RSS per kernel" in text
