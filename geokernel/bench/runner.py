"""Runs the scenarios for several kernels, interleaved round by round (A B A B ...)."""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

import gevent

from ..client import ClientError, KernelHandle, start_kernel
from . import scenarios
from .metrics import BY_KEY, METRICS

log = logging.getLogger(__name__)


@dataclass
class Config:
    rounds: int = 3
    exec_n: int = 200          # executes of `pass` for the round-trip percentiles
    lines: int = 100_000       # lines printed by the print scenario
    comm_n: int = 200          # comm round trips
    execs: int = 10_000        # executes before measuring RSS again
    settle: float = 2.0        # seconds idle before measuring RSS/threads
    idle_window: float = 2.0   # seconds over which idle CPU is measured
    hb_cap: float = 5.0        # longest we wait for a heartbeat echo during a busy loop
    timeouts: dict = field(default_factory=lambda: {
        "startup": 60, "idle": 30, "execute_rtt": 120, "print": 180, "comms": 60,
        "completion": 60, "interrupt": 30, "heartbeat": 40, "rss_after_execs": 900,
        "shutdown": 10})

    @classmethod
    def quick(cls, rounds: int = 1) -> "Config":
        return cls(rounds=rounds, exec_n=20, lines=10_000, comm_n=20, execs=200, settle=0.5,
                   idle_window=0.5, hb_cap=3.0)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


REMOTE_PREFIX = "remote:"  # kernel name "remote:NAME" = kernelspec NAME on the --server
TICK_S = 10.0              # a step running longer than this reports that it still runs


def is_remote(name: str) -> bool:
    return name.startswith(REMOTE_PREFIX)


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _brief(values: dict) -> str:
    """The first few figures of a step, for its progress line."""
    shown = []
    for key, v in values.items():
        if key.startswith("_") or v is None or len(shown) == 2:
            continue
        m = BY_KEY.get(key)
        text = m.fmt.format(v) if m and not isinstance(v, bool) else str(v)
        shown.append(f"{key}={text}{m.unit if m and m.unit in ('ms', 's', 'MiB', '%') else ''}")
    return ("  " + " ".join(shown)) if shown else ""


class Runner:
    """`server` (a geokernel.client.RemoteServer) starts the kernels named remote:NAME."""

    def __init__(self, kernels: list[str], cfg: Config, server=None):
        self.kernels = kernels
        self.cfg = cfg
        self.server = server
        # raw[kernel][metric] -> list of values (one per round; None = failed)
        self.raw = {k: {m.key: [] for m in METRICS} for k in kernels}
        self.notes = {k: {} for k in kernels}
        self.t0: float | None = None
        self._done = 0  # kernel-rounds finished

    def start(self, name: str, startup_timeout: float) -> KernelHandle:
        if is_remote(name):
            if self.server is None:
                raise ClientError(f"{name}: remote kernels need --server")
            return self.server.start_kernel(name[len(REMOTE_PREFIX):], startup_timeout=startup_timeout)
        return start_kernel(name, startup_timeout=startup_timeout)

    @staticmethod
    def capabilities(name: str) -> set:
        # a server's kernel: no local pid for psutil, and its heartbeat is not exposed
        return set() if is_remote(name) else {"pid", "heartbeat"}

    def estimate(self) -> float:
        """Rough seconds for the whole run (printed before it starts)."""
        total = 0.0
        for name in self.kernels:
            caps = self.capabilities(name)
            total += scenarios.STARTUP_ESTIMATE_S + sum(
                s.estimate(self.cfg) for s in scenarios.SCENARIOS if set(s.requires) <= caps)
        return total * self.cfg.rounds

    def _record(self, kernel: str, values: dict) -> None:
        for key, note in values.pop("_notes", {}).items():
            self.notes[kernel].setdefault(key, []).append(note)
        for key, v in values.items():
            self.raw[kernel].setdefault(key, []).append(v)

    def _fail(self, kernel: str, scenario: str, reason: str, label: str = "FAILED") -> None:
        progress(f"    {scenario}: {label} ({reason})")
        for m in METRICS:
            if m.scenario == scenario:
                self._record(kernel, {m.key: None, "_notes": {m.key: reason}})

    def run(self) -> None:
        self.t0 = time.monotonic()
        total = self.cfg.rounds * len(self.kernels)
        for rnd in range(1, self.cfg.rounds + 1):
            for name in self.kernels:
                progress(f"[round {rnd}/{self.cfg.rounds}] {name}")
                t = time.monotonic()
                self._one_kernel(name)
                self._done += 1
                elapsed = time.monotonic() - self.t0
                left = elapsed / self._done * (total - self._done)
                progress(f"  {name}: {_fmt_s(time.monotonic() - t)}; elapsed {_fmt_s(elapsed)}"
                         + (f", about {_fmt_s(left)} left" if self._done < total else ""))

    def _ticker(self, scenario: str, timeout: float):
        def tick():
            t0 = time.monotonic()
            while True:
                gevent.sleep(TICK_S)
                progress(f"    {scenario}: still running ({_fmt_s(time.monotonic() - t0)}, "
                         f"timeout {_fmt_s(timeout)})")
        return gevent.spawn(tick)

    def _guarded(self, name: str, scenario: str, timeout: float, fn, *args):
        """Run fn under its own timeout; returns its result or None after recording why."""
        t0 = time.monotonic()
        ticker = self._ticker(scenario, timeout)
        try:
            with gevent.Timeout(timeout, TimeoutError(f"scenario timed out after {timeout}s")):
                result = fn(*args)
        except (Exception, gevent.Timeout) as e:  # a bad kernel must not stop the harness
            self._fail(name, scenario, f"{type(e).__name__}: {e}")
            return None
        finally:
            ticker.kill(block=False)
        values = result[1] if isinstance(result, tuple) else result
        progress(f"    {scenario}: {time.monotonic() - t0:.1f}s"
                 + (_brief(values) if isinstance(values, dict) else ""))
        return result

    def _startup(self, name: str):
        return self._guarded(name, "startup", self.cfg.timeouts["startup"] + 5,
                             scenarios.startup, name, self.cfg, self.start)

    def _one_kernel(self, name: str) -> None:
        cfg = self.cfg
        started = self._startup(name)
        if started is None:
            for s in scenarios.SCENARIOS:
                self._fail(name, s.name, "kernel did not start")
            return
        k, values = started
        self._record(name, values)
        caps = self.capabilities(name)
        try:
            for s in scenarios.SCENARIOS:
                missing = set(s.requires) - caps
                if missing:
                    self._fail(name, s.name, "kernel behind a server: no "
                               + " or ".join(sorted(missing)) + " to measure", label="n/a")
                    continue
                if not self._usable(k):
                    k = self._replace(name, k)
                    if k is None:
                        self._fail(name, s.name, "kernel unusable and could not be restarted")
                        continue
                values = self._guarded(name, s.name, cfg.timeouts[s.timeout_key], s.fn, k, cfg)
                if values is not None:
                    self._record(name, values)
        finally:
            if k is not None:
                k.shutdown(timeout=cfg.timeouts["shutdown"])

    def _usable(self, k: KernelHandle) -> bool:
        """After a failed scenario the kernel may still be busy or dead; check quickly."""
        try:
            return k.request("shell", "kernel_info_request", {}, timeout=5).msg_type.endswith("_reply")
        except (ClientError, gevent.Timeout):
            return False

    def _replace(self, name: str, k: KernelHandle) -> KernelHandle | None:
        progress(f"    (kernel {name} unresponsive: starting a fresh one)")
        k.shutdown(timeout=2)
        got = self._guarded(name, "restart", self.cfg.timeouts["startup"] + 5,
                            scenarios.startup, name, self.cfg, self.start)
        return got[0] if got else None
