"""The kernel as a process: command line errors, kernelspec install, threads, shutdown."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from conftest import execute, start_kernel, stop_kernel


def _run(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "geokernel", *args], capture_output=True,
                          text=True, timeout=timeout)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _conn(tmp_path, **over):
    ports = _free_ports(5)
    info = {"transport": "tcp", "ip": "127.0.0.1", "key": "k", "signature_scheme": "hmac-sha256",
            "shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2],
            "control_port": ports[3], "hb_port": ports[4]}
    info.update(over)
    path = tmp_path / "conn.json"
    path.write_text(json.dumps(info))
    return str(path)


def _one_line_error(res, needle):
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert needle in lines[0]


def test_missing_connection_file(tmp_path):
    _one_line_error(_run("-f", str(tmp_path / "nope.json")), "not found")


def test_malformed_connection_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{ not json")
    _one_line_error(_run("-f", str(p)), "not valid JSON")
    _one_line_error(_run("-f", _conn(tmp_path, shell_port="x")), "shell_port")
    _one_line_error(_run("-f", _conn(tmp_path, signature_scheme="hmac-nope")), "signature_scheme")


def test_bad_command_line():
    _one_line_error(_run("--bogus"), "error")
    _one_line_error(_run(), "-f")


def test_port_in_use(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        res = _run("-f", _conn(tmp_path, control_port=busy.getsockname()[1]))
    finally:
        busy.close()
    _one_line_error(res, "cannot bind control")


def test_install_writes_a_kernelspec(tmp_path):
    res = _run("install", "--prefix", str(tmp_path), "--name", "geo-test", "--display-name", "Geo Test")
    assert res.returncode == 0, res.stderr
    spec = json.loads((tmp_path / "share/jupyter/kernels/geo-test/kernel.json").read_text())
    assert spec["display_name"] == "Geo Test"
    assert spec["argv"][1:] == ["-m", "geokernel", "-f", "{connection_file}"]
    assert spec["language"] == "python" and spec["interrupt_mode"] in ("signal", "message")


def test_kernelspec_is_listed():
    from jupyter_client.kernelspec import KernelSpecManager

    assert "geokernel" in KernelSpecManager().find_kernel_specs()


def kernel_threads(pid):
    """Names of the kernel process's OS threads (/proc/PID/task)."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names


def test_exactly_one_os_thread(kernel):
    km, kc = kernel
    pid = km.provisioner.process.pid
    assert len(kernel_threads(pid)) == 1  # after start-up
    execute(kc, "import collections; print('x' * 10); 1 + 1")
    execute(kc, "!echo shell")
    execute(kc, "import os; os.system('echo fd')")
    execute(kc, "input", allow_stdin=False)
    names = kernel_threads(pid)
    assert len(names) == 1, names  # the hub, every channel, IPython and the cell: one thread
    _, msgs = execute(kc, "import threading; print(threading.active_count())")
    assert "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream").strip() == "1"


def test_shutdown_reply_on_control_and_iopub_then_exit():
    km, kc = start_kernel()
    try:
        pid = km.provisioner.process.pid
        msg = kc.session.msg("shutdown_request", {"restart": True})
        kc.control_channel.send(msg)
        reply = kc.get_control_msg(timeout=10)
        assert reply["content"] == {"status": "ok", "restart": True}
        seen = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = kc.get_iopub_msg(timeout=10)
            if m["msg_type"] == "shutdown_reply":
                seen = m
                break
        assert seen is not None and seen["parent_header"]["msg_id"] == msg["header"]["msg_id"]
        km.provisioner.process.wait(timeout=10)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        stop_kernel(km, kc)
