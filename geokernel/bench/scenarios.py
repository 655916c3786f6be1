"""Benchmark scenarios. Each takes (handle, cfg) and returns {metric: value}.

They run under their own gevent.Timeout in the runner; anything a scenario cannot measure
it reports as None plus a reason in the "_notes" key.
"""
from __future__ import annotations

import statistics
import time

import gevent
import gevent.event
import psutil

from ..client import KernelHandle, KernelTimeoutError, start_kernel

COMM_TARGET = "geokernel_bench_echo"
COMM_SETUP = (
    "import comm\n"
    "def _geokernel_bench_target(c, msg):\n"
    "    @c.on_msg\n"
    "    def _echo(m):\n"
    "        c.send(m['content']['data'])\n"
    f"comm.get_comm_manager().register_target({COMM_TARGET!r}, _geokernel_bench_target)\n"
)


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2 ** 20


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def startup(name: str, cfg, start=start_kernel) -> tuple[KernelHandle, dict]:
    """`start(name, startup_timeout=...)` starts the kernel (a local or a server's kernel)."""
    t0 = time.monotonic()
    k = start(name, startup_timeout=cfg.timeouts["startup"])
    ready = time.monotonic() - t0
    # a kernel may answer kernel_info before its interpreter is loaded (geokernel does):
    # the first real result shows what that costs, so the start-up figure stays honest
    r = k.execute("1 + 1", timeout=cfg.timeouts["startup"])
    first = time.monotonic() - t0 if r.status == "ok" else None
    return k, {"startup_s": k.first_reply_at - k.launched_at, "ready_s": ready,
               "first_exec_s": first}


def idle(k: KernelHandle, cfg) -> dict:
    gevent.sleep(cfg.settle)
    p = psutil.Process(k.pid)
    rss, threads = _rss_mb(k.pid), p.num_threads()
    c0, t0 = p.cpu_times(), time.monotonic()
    gevent.sleep(cfg.idle_window)
    c1, dt = p.cpu_times(), time.monotonic() - t0
    # round away float noise (1e-15) so a truly idle kernel reads 0
    cpu = max(0.0, round((c1.user + c1.system - c0.user - c0.system) / dt * 100, 3))
    return {"idle_rss_mb": rss, "threads": threads, "idle_cpu_pct": cpu}


def execute_rtt(k: KernelHandle, cfg) -> dict:
    for _ in range(5):  # warm-up: first executes import/compile things
        k.execute("pass", timeout=30)
    times = []
    for _ in range(cfg.exec_n):
        t0 = time.perf_counter()
        r = k.execute("pass", timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status != "ok":
            raise RuntimeError(f"execute failed: {r.error}")
    return {"exec_p50_ms": statistics.median(times), "exec_p99_ms": _pct(times, 0.99)}


def print_lines(k: KernelHandle, cfg) -> dict:
    n = cfg.lines
    count = {"stream": 0}

    def on_output(m):
        if m.msg_type == "stream":
            count["stream"] += 1

    t0 = time.perf_counter()
    r = k.execute(f"for i in range({n}): print(i)", on_output=on_output,
                  timeout=cfg.timeouts["print"])
    wall = time.perf_counter() - t0
    expected = "".join(f"{i}\n" for i in range(n))
    got = r.stdout
    out = {"print_s": wall, "print_msgs": count["stream"], "print_complete": got == expected}
    if got != expected:  # say how: lost, duplicated or reordered, and where
        at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        out["_notes"] = {"print_complete": f"got {len(got)} of {len(expected)} chars, first "
                                           f"difference at {at}: {got[max(0, at - 20):at + 20]!r}"}
    return out


def comms(k: KernelHandle, cfg) -> dict:
    r = k.execute(COMM_SETUP, timeout=30)
    if r.status != "ok":
        return {"comm_rt_per_s": None, "_notes": {"comm_rt_per_s": f"no comm support: {r.error}"}}
    cid = k.comm_open(COMM_TARGET, {})
    try:
        def one(i, timeout=10.0):
            k.comm_send(cid, {"i": i})
            m = k.recv_comm(cid, timeout=timeout)
            if m.msg_type != "comm_msg" or m.content.get("data") != {"i": i}:
                raise RuntimeError(f"unexpected comm reply {m.msg_type} {m.content}")
        try:
            one(-1, timeout=5.0)  # warm-up, and proves the target answers
        except (KernelTimeoutError, RuntimeError) as e:
            return {"comm_rt_per_s": None, "_notes": {"comm_rt_per_s": f"comm target did not echo: {e}"}}
        t0 = time.perf_counter()
        for i in range(cfg.comm_n):
            one(i)
        return {"comm_rt_per_s": cfg.comm_n / (time.perf_counter() - t0)}
    finally:
        k.comm_close(cid)


def completion(k: KernelHandle, cfg) -> dict:
    times = []
    for code in ("import o", "pri") * 3:
        t0 = time.perf_counter()
        reply = k.complete(code, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        if reply.get("status") != "ok":
            raise RuntimeError(f"complete_request failed: {reply}")
    return {"complete_ms": statistics.median(times), "complete_first_ms": times[0]}


def _start_busy(k: KernelHandle, code: str, timeout: float):
    """Run `code` in a greenlet; return it once the kernel reports busy (+ a moment)."""
    busy = gevent.event.Event()

    def on_output(m):
        if m.msg_type == "status" and m.content.get("execution_state") == "busy":
            busy.set()
    g = gevent.spawn(k.execute, code, on_output=on_output, timeout=timeout)
    if not busy.wait(10):
        g.kill()
        raise RuntimeError("kernel never reported busy")
    gevent.sleep(0.5)  # let the loop really start
    return g


def _stop_busy(k: KernelHandle, g, what: str):
    t0 = time.perf_counter()
    k.interrupt(timeout=10)
    r = g.get(timeout=10)
    dt = (time.perf_counter() - t0) * 1000
    if r.error is None or r.error.ename != "KeyboardInterrupt":
        raise RuntimeError(f"{what}: interrupt did not raise KeyboardInterrupt: {r.status} {r.error}")
    return dt


def interrupt(k: KernelHandle, cfg) -> dict:
    g = _start_busy(k, "while True: pass", cfg.timeouts["interrupt"])
    return {"interrupt_ms": _stop_busy(k, g, "busy loop")}


def heartbeat(k: KernelHandle, cfg) -> dict:
    k.channels.ping(timeout=5)  # connect the REQ socket outside the measurement
    t0 = time.perf_counter()
    ok = k.channels.ping(timeout=5)
    idle_ms = (time.perf_counter() - t0) * 1000 if ok else None
    g = _start_busy(k, "x = 0\nwhile True: x += 1", cfg.timeouts["heartbeat"])
    t0 = time.perf_counter()
    ok = k.channels.ping(timeout=cfg.hb_cap)
    busy_ms = (time.perf_counter() - t0) * 1000 if ok else None
    _stop_busy(k, g, "heartbeat busy loop")
    out = {"hb_idle_ms": idle_ms, "hb_busy_ms": busy_ms}
    if not ok:
        out["_notes"] = {"hb_busy_ms": f"no echo within {cfg.hb_cap}s (cap)"}
    return out


def rss_after_execs(k: KernelHandle, cfg) -> dict:
    before = _rss_mb(k.pid)
    for i in range(cfg.execs):
        r = k.execute(f"x = {i}", timeout=30)
        if r.status != "ok":
            raise RuntimeError(f"execute failed: {r.error}")
    after = _rss_mb(k.pid)
    return {"rss_after_execs_mb": after, "rss_growth_mb": after - before}


class Scenario:
    """One benchmark step: fn(handle, cfg) -> {metric: value}.

    `timeout_key` picks its limit from cfg.timeouts; `estimate(cfg)` is a rough duration in
    seconds for the up-front time estimate; `requires` names what the kernel handle must offer:
    "pid" (a local process for psutil) or "heartbeat" (the kernel's own heartbeat channel),
    which a kernel behind a server does not have.
    """

    def __init__(self, name: str, fn, timeout_key: str, estimate=lambda cfg: 1.0,
                 requires: tuple = ()):
        self.name, self.fn, self.timeout_key = name, fn, timeout_key
        self.estimate, self.requires = estimate, tuple(requires)

    def __repr__(self) -> str:
        return f"<Scenario {self.name}>"


PER_EXECUTE_S = 0.006  # rough cost of one execute round trip, for estimates only

# startup is special-cased by the runner (it creates the handle the others use);
# append new scenarios here (metrics.METRICS names the figures each one yields).
SCENARIOS = [
    Scenario("idle", idle, "idle", lambda c: c.settle + c.idle_window + 0.2, requires=("pid",)),
    Scenario("execute_rtt", execute_rtt, "execute_rtt", lambda c: (c.exec_n + 5) * PER_EXECUTE_S),
    Scenario("print_lines", print_lines, "print", lambda c: 0.2 + c.lines * 6e-6),
    Scenario("comms", comms, "comms", lambda c: 0.2 + c.comm_n * 0.0015),
    Scenario("completion", completion, "completion", lambda c: 1.5),
    Scenario("interrupt", interrupt, "interrupt", lambda c: 0.8),
    Scenario("heartbeat", heartbeat, "heartbeat", lambda c: 1.0, requires=("heartbeat",)),
    Scenario("rss_after_execs", rss_after_execs, "rss_after_execs",
             lambda c: c.execs * PER_EXECUTE_S, requires=("pid",)),
]
STARTUP_ESTIMATE_S = 2.0  # start-up, first execute and shutdown of one kernel
