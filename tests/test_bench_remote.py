"""`geokernel bench --server URL --token T`: a local and a remote geokernel side by side,
against a real `jupyter server`; and the bench's progress, labels and PNG."""
from __future__ import annotations

import json

import pytest
from remote_server import jupyter_server

from geokernel.bench import main
from geokernel.bench.metrics import BY_KEY, METRICS, label
from geokernel.bench.report import plot, plottable, title
from geokernel.bench.runner import Config

TINY = ["--quick", "--rounds", "1", "--exec-n", "5", "--lines", "3000", "--comm-n", "5",
        "--execs", "20"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with jupyter_server(str(tmp_path_factory.mktemp("bench-server"))) as s:
        yield s
        left = s.get("/api/kernels")
    assert left == [], left


def test_bench_local_and_remote(server, tmp_path, capsys):
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    rc = main(TINY + ["--server", server.url, "--token", server.token,
                      "--kernels", "geokernel,remote:geokernel,remote:no-such-kernel",
                      "--json", str(out_json), "--plot", str(out_png)])
    assert rc == 0
    cap = capsys.readouterr()
    assert "skipping remote:no-such-kernel: no kernelspec 'no-such-kernel'" in cap.err
    assert "estimated" in cap.err and "[round 1/1] remote:geokernel" in cap.err
    assert "    execute_rtt: " in cap.err and "idle: n/a (kernel behind a server" in cap.err
    assert "print 3000 lines: wall time" in cap.out and "remote:geokernel" in cap.out

    text = out_json.read_text()
    assert server.token not in text  # the token never reaches the results file
    data = json.loads(text)
    assert data["kernels"] == ["geokernel", "remote:geokernel"]
    assert data["meta"]["server"] == server.url and data["meta"]["estimate_s"] > 0
    assert "remote:no-such-kernel" in data["skipped"]
    remote = data["results"]["remote:geokernel"]
    for key in ("startup_s", "ready_s", "first_exec_s", "exec_p50_ms", "print_s", "comm_rt_per_s",
                "complete_ms", "interrupt_ms"):
        assert isinstance(remote[key]["value"], float) and remote[key]["value"] > 0, (key, remote[key])
    assert remote["print_complete"]["value"] is True
    for key in ("idle_rss_mb", "threads", "hb_idle_ms", "rss_after_execs_mb"):
        assert remote[key]["value"] is None and "behind a server" in remote[key]["notes"][0]
    local = data["results"]["geokernel"]
    assert local["threads"]["value"] == 1 and local["hb_idle_ms"]["value"] is not None
    assert remote["exec_p50_ms"]["ratio"] is not None
    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_remote_kernel_without_server_is_skipped(capsys):
    assert main(["--quick", "--kernels", "remote:geokernel"]) == 2
    err = capsys.readouterr().err
    assert "skipping remote:geokernel: remote kernel but no --server" in err


def test_help_documents_remote_kernels(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--server URL" in out and "remote:NAME" in out and "--quick" in out


def test_labels_carry_real_parameters():
    cfg = Config(lines=1234, execs=77, exec_n=9, comm_n=5)
    assert label(BY_KEY["print_s"], cfg) == "print 1234 lines: wall time"
    assert "77 executes" in label(BY_KEY["rss_growth_mb"], cfg)
    assert "9 x pass" in label(BY_KEY["exec_p50_ms"], cfg)
    assert all("{" not in label(m, cfg) for m in METRICS)


def test_plot_has_no_empty_panels_and_a_full_title(tmp_path):
    kernels = ["a", "remote:a"]
    summary = {k: {m.key: {"value": None, "ratio": None, "notes": []} for m in METRICS}
               for k in kernels}
    summary["a"]["exec_p50_ms"]["value"] = 1.5
    summary["remote:a"]["exec_p50_ms"]["value"] = 3.0
    summary["a"]["idle_cpu_pct"]["value"] = 0.0  # all-zero data still gets a (labelled) panel
    assert [m.key for m in plottable(summary, kernels)] == ["idle_cpu_pct", "exec_p50_ms"]
    cfg = Config.quick(rounds=2)
    path = tmp_path / "p.png"
    assert plot(str(path), summary, kernels, cfg, 0.0, "http://h:1") == 2
    assert path.read_bytes()[:4] == b"\x89PNG"
    t = title(cfg, kernels, 0.0, "http://h:1")
    assert "1970-01-01" in t and "2 round(s)" in t and "a, remote:a" in t and "http://h:1" in t
