"""The benchmark harness end to end, in quick mode with tiny counts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from geokernel.bench import main
from geokernel.bench.metrics import METRICS
from geokernel.client import list_kernelspecs

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = {s.name for s in list_kernelspecs()}


def test_bench_quick_end_to_end(tmp_path, capsys):
    kernels = ["python3"] + (["geokernel"] if "geokernel" in INSTALLED else [])
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["--quick", "--rounds", "1", "--kernels", ",".join(kernels + ["no-such-kernel"]),
               "--exec-n", "5", "--lines", "2000", "--comm-n", "5", "--execs", "20",
               "--json", str(out_json), "--plot", str(out_png)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "skipping no-such-kernel" in captured.err
    assert "execute round trip p50" in captured.out and "python3" in captured.out

    data = json.loads(out_json.read_text())
    assert data["kernels"] == kernels and data["baseline"] == "python3"
    assert "no-such-kernel" in data["skipped"]
    assert set(data["scenarios"]) >= {"startup", "idle", "execute_rtt", "print_lines", "comms",
                                      "completion", "interrupt", "heartbeat", "rss_after_execs"}
    base = data["results"]["python3"]
    assert {m.key for m in METRICS} <= set(base)
    # ipykernel supports everything we measure, so none of its figures may be missing
    for m in METRICS:
        assert base[m.key]["value"] is not None, (m.key, base[m.key]["notes"])
    assert base["print_complete"]["value"] is True
    assert base["exec_p50_ms"]["ratio"] == 1.0
    for k in kernels:
        assert data["results"][k]["startup_s"]["value"] > 0

    assert out_png.exists() and out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_no_kernels(capsys):
    assert main(["--quick", "--kernels", "no-such-kernel"]) == 2
    assert "no kernel to benchmark" in capsys.readouterr().err


def test_bench_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "geokernel.bench", "--help"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and "--kernels" in out.stdout and "--plot" in out.stdout
