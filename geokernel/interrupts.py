"""Staying responsive in one thread: the execution tick and SIGINT.

While a cell runs, SIGALRM fires every `interval` seconds. If the executing greenlet was
interrupted in user code (no gevent/zmq/greenlet/geokernel frame between the handler and the
cell's code), the handler lets the hub take a turn (`gevent.idle()`), so the heartbeat and
control greenlets answer during busy loops and blocking sleeps. SIGINT raises
KeyboardInterrupt in the cell at a safe point, or schedules a throw when the cell's greenlet is
parked; it is ignored while idle. This module and cli.py are the only places touching signals.
"""
from __future__ import annotations

import signal

import gevent

# pydevd/debugpy frames sit between the handler and the cell while a cell is stopped at a
# breakpoint: never switch or raise there (the debugger's suspend pump yields instead)
_UNSAFE_PREFIXES = ("geokernel", "gevent", "zmq", "greenlet", "_pydev", "pydev", "debugpy")


class ExecutionTick:
    def __init__(self, kernel, interval: float = 0.02):
        self.kernel = kernel
        self.interval = interval
        self.pending_interrupt = False
        self._boundaries = ()  # code objects where user code starts (see _in_user_code)

    def install(self) -> None:
        signal.signal(signal.SIGALRM, self._on_alarm)
        # restart interrupted system calls: a short write to a full pipe must not lose data
        signal.siginterrupt(signal.SIGALRM, False)
        signal.signal(signal.SIGINT, self._on_sigint)
        from IPython.core.interactiveshell import InteractiveShell

        from .aioloop import TICK_BOUNDARIES
        from .ipython.shell import run_async_cell

        # a cell's code runs under run_code; a cell with top-level await runs its asyncio loop
        # under our loop runner (run_code is then a suspended coroutine, not on the stack)
        self._boundaries = (InteractiveShell.run_code.__code__, run_async_cell.__code__,
                            *TICK_BOUNDARIES)
        self.kernel.on_interrupt = self.interrupt
        self.kernel.cell_hooks.insert(0, self)

    def cell_started(self) -> None:
        self.pending_interrupt = False
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)

    def cell_finished(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        self.pending_interrupt = False

    def _in_user_code(self, frame) -> bool:
        """True when every frame up to the cell's boundary belongs to neither gevent, zmq,
        greenlet nor geokernel: only then is it safe to switch greenlets or raise."""
        boundaries = self._boundaries
        while frame is not None:
            if frame.f_code in boundaries:
                return True
            name = frame.f_globals.get("__name__") or ""
            if name.startswith(_UNSAFE_PREFIXES):
                return False
            frame = frame.f_back
        return False

    def _executing_here(self) -> bool:
        k = self.kernel
        return k.executing and k.worker is not None and gevent.getcurrent() is k.worker

    def _on_alarm(self, signum, frame) -> None:
        __tracebackhide__ = True  # noqa: F841 (IPython hides this frame in tracebacks)
        if not self._executing_here() or not self._in_user_code(frame):
            return
        if self.pending_interrupt:
            self.pending_interrupt = False
            raise KeyboardInterrupt
        try:
            gevent.idle()  # the hub polls I/O and runs ready greenlets, then comes back
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # drop the hub's frames from the traceback

    def _on_sigint(self, signum, frame) -> None:
        __tracebackhide__ = True  # noqa: F841
        self.interrupt(frame)

    def interrupt(self, frame=None) -> None:
        __tracebackhide__ = True  # noqa: F841
        k = self.kernel
        if not k.executing:
            return  # idle: an interrupt is harmless
        if gevent.getcurrent() is k.worker:
            if frame is not None and self._in_user_code(frame):
                raise KeyboardInterrupt
            self.pending_interrupt = True  # delivered by the next tick at a safe point
        else:
            # the cell's greenlet is parked (input, sleep, tick): throw from the hub
            gevent.get_hub().loop.run_callback(k.throw_into_worker)
