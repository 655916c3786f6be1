"""Runs the scenarios for several kernels, interleaved round by round (A B A B ...)."""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

import gevent

from ..client import ClientError, KernelHandle
from . import scenarios
from .metrics import METRICS

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


class Runner:
    def __init__(self, kernels: list[str], cfg: Config):
        self.kernels = kernels
        self.cfg = cfg
        # raw[kernel][metric] -> list of values (one per round; None = failed)
        self.raw = {k: {m.key: [] for m in METRICS} for k in kernels}
        self.notes = {k: {} for k in kernels}

    def _record(self, kernel: str, values: dict) -> None:
        for key, note in values.pop("_notes", {}).items():
            self.notes[kernel].setdefault(key, []).append(note)
        for key, v in values.items():
            self.raw[kernel].setdefault(key, []).append(v)

    def _fail(self, kernel: str, scenario: str, reason: str) -> None:
        progress(f"    {scenario}: FAILED ({reason})")
        for m in METRICS:
            if m.scenario == scenario:
                self._record(kernel, {m.key: None, "_notes": {m.key: reason}})

    def run(self) -> None:
        for rnd in range(1, self.cfg.rounds + 1):
            for name in self.kernels:
                progress(f"[round {rnd}/{self.cfg.rounds}] {name}")
                self._one_kernel(name)

    def _guarded(self, name: str, scenario: str, timeout: float, fn, *args):
        """Run fn under its own timeout; returns its result or None after recording why."""
        t0 = time.monotonic()
        try:
            with gevent.Timeout(timeout, TimeoutError(f"scenario timed out after {timeout}s")):
                result = fn(*args)
        except (Exception, gevent.Timeout) as e:  # a bad kernel must not stop the harness
            self._fail(name, scenario, f"{type(e).__name__}: {e}")
            return None
        progress(f"    {scenario}: {time.monotonic() - t0:.1f}s")
        return result

    def _one_kernel(self, name: str) -> None:
        cfg = self.cfg
        started = self._guarded(name, "startup", cfg.timeouts["startup"] + 5,
                                scenarios.startup, name, cfg)
        if started is None:
            for scenario, _, _ in scenarios.SCENARIOS:
                self._fail(name, scenario, "kernel did not start")
            return
        k, values = started
        self._record(name, values)
        try:
            for scenario, fn, tkey in scenarios.SCENARIOS:
                if not self._usable(k):
                    k = self._replace(name, k)
                    if k is None:
                        self._fail(name, scenario, "kernel unusable and could not be restarted")
                        continue
                values = self._guarded(name, scenario, cfg.timeouts[tkey], fn, k, cfg)
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
                            scenarios.startup, name, self.cfg)
        return got[0] if got else None
