"""Debugger latency while a cell is stopped at a breakpoint (issue 6), side by side.

Drives the DAP sequence JupyterLab sends (initialize, attach, dumpCell, setBreakpoints,
configurationDone), runs a cell that stops at a breakpoint, then times stackTrace, scopes,
variables and evaluate requests, a heartbeat echo and a control kernel_info while stopped.

    python benchmarks/debugger_latency.py [--kernels geokernel,python3] [--n 20] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import zmq
from jupyter_client.manager import KernelManager

CELL = "def f(n):\n    total = n * 2\n    return total\n\nx = f(21)\n"
BREAK_LINE = 3


class Dap:
    def __init__(self, kc):
        self.kc, self.seq = kc, 0

    def __call__(self, command, arguments=None, timeout=20.0):
        self.seq += 1
        msg = self.kc.session.msg("debug_request", {"type": "request", "seq": self.seq,
                                                    "command": command, "arguments": arguments or {}})
        self.kc.control_channel.send(msg)
        while True:
            r = self.kc.control_channel.get_msg(timeout=timeout)
            if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                if not r["content"].get("success"):
                    raise RuntimeError(f"{command} failed: {r['content']}")
                return r["content"].get("body", {})


def wait_stopped(kc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=deadline - time.monotonic())
        if m["msg_type"] == "debug_event" and m["content"].get("event") == "stopped":
            return m["content"]["body"]["threadId"]
    raise TimeoutError("the cell never stopped at the breakpoint")


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def measure(name, n):
    km = KernelManager(kernel_name=name, ip="127.0.0.1")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    hb = zmq.Context.instance().socket(zmq.REQ)
    hb.linger = 0
    try:
        kc.wait_for_ready(timeout=60)
        dap = Dap(kc)
        dap("initialize", {"clientID": "jupyterlab", "adapterID": "python", "pathFormat": "path",
                           "linesStartAt1": True, "columnsStartAt1": True})
        dap("attach")
        path = dap("dumpCell", {"code": CELL})["sourcePath"]
        dap("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": BREAK_LINE}]})
        dap("configurationDone")
        msg_id = kc.execute(CELL)
        thread = wait_stopped(kc)
        frame = dap("stackTrace", {"threadId": thread})["stackFrames"][0]["id"]
        scope = dap("scopes", {"frameId": frame})["scopes"][0]["variablesReference"]
        hb.connect(f"tcp://127.0.0.1:{km.hb_port}")

        def ping():
            hb.send(b"ping")
            if not hb.poll(5000):
                raise TimeoutError("no heartbeat while stopped")
            hb.recv()

        def control_info():
            msg = kc.session.msg("kernel_info_request")
            kc.control_channel.send(msg)
            while kc.control_channel.get_msg(timeout=5)["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                pass

        res = {
            "stackTrace_ms": timed(lambda: dap("stackTrace", {"threadId": thread}), n),
            "scopes_ms": timed(lambda: dap("scopes", {"frameId": frame}), n),
            "variables_ms": timed(lambda: dap("variables", {"variablesReference": scope}), n),
            "evaluate_ms": timed(lambda: dap("evaluate", {"expression": "total + 1", "frameId": frame,
                                                          "context": "repl"}), n),
            "heartbeat_ms": timed(ping, n),
            "control_kernel_info_ms": timed(control_info, n),
        }
        dap("continue", {"threadId": thread})
        while kc.get_shell_msg(timeout=20)["parent_header"].get("msg_id") != msg_id:
            pass
        return res
    finally:
        hb.close()
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", default="geokernel,python3")
    p.add_argument("--n", type=int, default=20, help="requests of each kind (median reported)")
    p.add_argument("--json")
    a = p.parse_args(argv)
    results = {}
    for name in a.kernels.split(","):
        print(f"{name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = measure(name, a.n)
        except Exception as e:  # a kernel without a working debugger: report, go on
            results[name] = {"error": f"{type(e).__name__}: {e}"}
    names = list(results)
    metrics = [m for m in next(iter(results.values())) if m != "error"] or ["error"]
    print(f"{'median while stopped':24}" + "".join(f"{n:>16}" for n in names))
    for m in metrics:
        print(f"{m:24}" + "".join(f"{results[n].get(m, float('nan')):>16.2f}" for n in names))
    for n in names:
        if "error" in results[n]:
            print(f"{n}: {results[n]['error']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
