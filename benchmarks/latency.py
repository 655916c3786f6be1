"""Responsiveness latencies, geokernel side by side with ipykernel (issue 3).

For each kernel (interleaved per round): heartbeat echo and control kernel_info while a cell
runs a busy loop, sleeps, or waits for input; interrupt -> reply + idle in each cell state, by
signal and by interrupt_request; shutdown_request while busy -> process exit.

    python benchmarks/latency.py [--kernels geokernel,python3] [--rounds 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time

import zmq
from jupyter_client.manager import KernelManager

STATES = {
    "busy": "x = 0\nwhile True:\n    x += 1",
    "sleep": "import time; time.sleep(100)",
    "input": "input('? ')",
    "getpass": "import getpass; getpass.getpass('? ')",
    "bang": "!sleep 100",
    "await": "import asyncio\nawait asyncio.sleep(100)",
}
CAP = 5.0  # seconds: a latency above this is reported as > CAP


def start(name):
    km = KernelManager(kernel_name=name, ip="127.0.0.1")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def stop(km, kc):
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)


def run_cell(kc, code):
    msg_id = kc.execute(code, allow_stdin=True)
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            break
    if "input(" in code or "getpass(" in code:
        kc.get_stdin_msg(timeout=10)
    time.sleep(0.3)
    return msg_id


def wait_done(kc, msg_id, timeout=CAP):
    """Until the reply and the idle status of msg_id have both arrived."""
    deadline = time.monotonic() + timeout
    got_reply = got_idle = False
    while not (got_reply and got_idle):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not got_reply and kc.shell_channel.msg_ready():
            got_reply = kc.get_shell_msg(timeout=0)["parent_header"].get("msg_id") == msg_id or got_reply
            continue
        if not got_idle and kc.iopub_channel.msg_ready():
            m = kc.get_iopub_msg(timeout=0)
            got_idle = got_idle or (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                                    and m["content"]["execution_state"] == "idle")
            continue
        time.sleep(0.0005)
    return True


def hb_socket(km):
    """One REQ socket per kernel, kept open as clients keep theirs (a new connection would also
    time the connection handshake)."""
    s = zmq.Context.instance().socket(zmq.REQ)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{km.hb_port}")
    s.send(b"warm-up")
    s.poll(int(CAP * 1000)) and s.recv()
    return s


def hb_latency(s):
    t0 = time.perf_counter()
    s.send(b"ping")
    return time.perf_counter() - t0 if s.poll(int(CAP * 1000)) and s.recv() else None


def control_latency(kc):
    msg = kc.session.msg("kernel_info_request")
    t0 = time.perf_counter()
    kc.control_channel.send(msg)
    deadline = t0 + CAP
    while time.perf_counter() < deadline:
        try:
            r = kc.get_control_msg(timeout=max(0.001, deadline - time.perf_counter()))
        except Exception:
            return None
        if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return time.perf_counter() - t0
    return None


def interrupt(km, kc, mode):
    if mode == "signal":
        os.killpg(os.getpgid(km.provisioner.process.pid), signal.SIGINT) \
            if km.kernel_spec.interrupt_mode == "signal" else os.kill(km.provisioner.process.pid, signal.SIGINT)
    else:
        kc.control_channel.send(kc.session.msg("interrupt_request", {}))


def one_round(name, results):
    km, kc = start(name)
    hb_sock = hb_socket(km)
    try:
        for state in ("busy", "sleep", "input"):
            msg_id = run_cell(kc, STATES[state])
            hb = [hb_latency(hb_sock) for _ in range(5)]
            ctl = [control_latency(kc) for _ in range(5)]
            results.setdefault(f"hb_{state}_ms", []).append(_median_ms(hb))
            results.setdefault(f"control_{state}_ms", []).append(_median_ms(ctl))
            interrupt(km, kc, "message")
            if not wait_done(kc, msg_id, 10):
                km.restart_kernel(now=True)
                kc.wait_for_ready(timeout=60)
        for state in STATES:
            for mode in ("signal", "message"):
                msg_id = run_cell(kc, STATES[state])
                t0 = time.perf_counter()
                interrupt(km, kc, mode)
                ok = wait_done(kc, msg_id)
                results.setdefault(f"interrupt_{state}_{mode}_ms", []).append(
                    (time.perf_counter() - t0) * 1000 if ok else None)
                if not ok:  # a kernel that did not stop: start over for the next state
                    stop(km, kc)
                    km, kc = start(name)
        run_cell(kc, STATES["busy"])
        t0 = time.perf_counter()
        kc.control_channel.send(kc.session.msg("shutdown_request", {"restart": False}))
        try:
            km.provisioner.process.wait(timeout=CAP)
            results.setdefault("shutdown_busy_ms", []).append((time.perf_counter() - t0) * 1000)
        except Exception:
            results.setdefault("shutdown_busy_ms", []).append(None)
    finally:
        hb_sock.close()
        stop(km, kc)


def _median_ms(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) * 1000 if len(vals) == len(values) else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", default="geokernel,python3")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    a = p.parse_args(argv)
    names = a.kernels.split(",")
    results = {n: {} for n in names}
    for r in range(a.rounds):
        for n in names:
            print(f"round {r + 1}/{a.rounds}: {n}", file=sys.stderr, flush=True)
            one_round(n, results[n])
    metrics = list(results[names[0]])
    med = {n: {m: _med(results[n].get(m, [])) for m in metrics} for n in names}
    print(f"{'metric':32}" + "".join(f"{n:>22}" for n in names))
    for m in metrics:
        base = med[names[0]][m]
        row = f"{m:32}"
        for n in names:
            v = med[n][m]
            ratio = f" ({v / base:.2f}x)" if v is not None and base else ""
            row += f"{('> %.0f s' % CAP) if v is None else f'{v:.1f}{ratio}':>22}"
        print(row)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": a.rounds, "raw": results, "median_ms": med}, f, indent=1)


def _med(vals):
    if not vals or any(v is None for v in vals):
        return None  # any miss counts: a latency target must hold every time
    return statistics.median(vals)


if __name__ == "__main__":
    main()
