"""Staying responsive in one thread: the execution tick and SIGINT.

While a cell runs, a private POSIX timer (timer_create) delivers a real-time signal every
`interval` seconds; SIGALRM, ITIMER_REAL and signal.alarm stay the user's. If the executing
greenlet was interrupted in user code (no gevent/zmq/greenlet/geokernel frame between the
handler and the cell's code), the handler lets the hub take a turn (`gevent.idle()`), so the
heartbeat and control greenlets answer during busy loops and blocking sleeps. SIGINT raises
KeyboardInterrupt in the cell at a safe point, or schedules a throw when the cell's greenlet is
parked; it is ignored while idle. This module and process.py are the only places touching signals.

System calls and the tick (measured, see TICK_MODES): the tick signal restarts interrupted
system calls (SA_RESTART), so a C-level write to a full pipe never returns EINTR and loses
nothing. A restarted waitpid/read never returns to Python, though, so a second timer, the
"unblock" signal without SA_RESTART, fires only when the tick's handler has not run for
`unblock_after` seconds: the blocked call returns EINTR, Python retries it (PEP 475) after
running our handler, which serves the hub. Sleeps (nanosleep, usleep) return early on any
handled signal, with or without SA_RESTART: C code that sleeps sees the tick.

Measured (2-core shared machine, 20 ms tick): during subprocess.run/os.waitpid/Process.join/
a pipe read/a Lock held by a thread the heartbeat answers in ~50-280 ms (select, sockets,
Queue.get, Event.wait, Lock.acquire with a timeout: ~20-60 ms); "restart" mode: not at all
(2.5 s behind a 3 s subprocess). A 15 MB fwrite to a pipe whose reader takes 2.3 s: complete
in "hybrid" and "restart", cut at 64 KiB in "eintr". What remains: a C-level blocking write
or read that makes no progress for `unblock_after` (a reader stalled 0.5 s) gets EINTR, which
C code that does not retry (glibc fwrite) reports as an error; a single os.write to a pipe
returns a short count once a signal lands mid-write (file objects retry; any signal does this
in plain Python too); while a cell runs, libc sleep(1) returns after one tick (~20 ms,
reporting 0 s left) and usleep(200 ms) returns EINTR after ~20 ms. Still blocking: os.system
(glibc's system() retries waitpid itself), long C calls that never return to Python.
"""
from __future__ import annotations

import logging
import signal
import time
from contextlib import contextmanager

import gevent

from .posix_timer import PosixTimer

log = logging.getLogger("geokernel.interrupts")

# pydevd/debugpy frames sit between the handler and the cell while a cell is stopped at a
# breakpoint: never switch or raise there (the debugger's suspend pump yields instead)
_UNSAFE_PREFIXES = ("geokernel", "gevent", "zmq", "greenlet", "_pydev", "pydev", "debugpy")

# how system calls meet the tick (GEOKERNEL_TICK_MODE, for measuring): "hybrid" (default):
# SA_RESTART tick + unblock signal after `unblock_after`; "restart": SA_RESTART only (blocking
# calls freeze the kernel); "eintr": no SA_RESTART at all (C code sees EINTR every tick)
TICK_MODES = ("hybrid", "restart", "eintr")


def make_pdb_interruptible() -> None:
    """pdb.set_trace()/breakpoint() use IPython's InterruptiblePdb, as on ipykernel: an
    interrupt at the (Pdb) prompt leaves the debugger and the cell goes on, instead of the
    stdlib prompt coming back for good."""
    import pdb  # noqa: T100

    from IPython.core import debugger

    if hasattr(debugger, "InterruptiblePdb"):
        debugger.Pdb = debugger.InterruptiblePdb
        pdb.Pdb = debugger.InterruptiblePdb
        pdb.set_trace = debugger.set_trace


class UserCodeTimeout(BaseException):
    """User code run from a kernel greenlet (e.g. a __repr__ for the variable panel) did not
    return in time. A BaseException: `except Exception` in or around the user code must not
    swallow it."""


def call_user(fn, *args, **kwargs):
    """Call user-reachable code from a kernel greenlet inside ExecutionTick.user_code(): this
    frame is the boundary up to which the tick may switch away from that greenlet."""
    return fn(*args, **kwargs)


class ExecutionTick:
    """`signo`/`unblock_signo`: the real-time signals the kernel reserves (default SIGRTMIN+11
    and +10); `unblock_after`: how long a blocked system call may keep the hub waiting;
    `unblock_turn`: how long the hub then runs before the call is retried.

    Linux delivers pending real-time signals lowest number first, and the first one decides
    whether the interrupted call restarts: the unblock signal has the lower number, and its
    timer runs half a tick out of phase with the tick's, so the two rarely coincide."""

    def __init__(self, kernel, interval: float = 0.02, mode: str = "hybrid",
                 unblock_after: float = 0.1, unblock_turn: float = 0.002, signo: int | None = None,
                 unblock_signo: int | None = None):
        if mode not in TICK_MODES:
            raise ValueError(f"tick mode must be one of {', '.join(TICK_MODES)}, not {mode!r}")
        self.kernel = kernel
        self.interval = interval
        self.mode = mode
        self.unblock_after = unblock_after
        self.unblock_turn = unblock_turn
        self.signo = signal.SIGRTMIN + 11 if signo is None else signo
        self.unblock_signo = signal.SIGRTMIN + 10 if unblock_signo is None else unblock_signo
        self.pending_interrupt = False
        self.ticks = 0  # handler runs (for tests and measurements)
        self._boundaries = ()  # code objects where user code starts (see _in_user_code)
        self._timer = self._unblock = None
        self._sections: dict = {}  # kernel greenlet -> deadline, inside user_code()
        self._armed = False

    def install(self) -> None:
        signal.signal(self.signo, self._on_tick)
        signal.siginterrupt(self.signo, self.mode == "eintr")
        self._timer = PosixTimer(self.signo)
        if self.mode == "hybrid":
            signal.signal(self.unblock_signo, self._on_tick)
            signal.siginterrupt(self.unblock_signo, True)  # the point: make the call return
            self._unblock = PosixTimer(self.unblock_signo)
        signal.signal(signal.SIGINT, self._on_sigint)
        from IPython.core.interactiveshell import InteractiveShell

        from .aioloop import TICK_BOUNDARIES
        from .ipython.shell import run_async_cell

        # a cell's code runs under run_code; a cell with top-level await runs its asyncio loop
        # under our loop runner (run_code is then a suspended coroutine, not on the stack)
        # call_user: where the kernel calls user code outside a cell (comm handlers, the
        # debugger's variable reprs)
        self._boundaries = (InteractiveShell.run_code.__code__, run_async_cell.__code__,
                            call_user.__code__, *TICK_BOUNDARIES)
        self.kernel.on_interrupt = self.interrupt
        self.kernel.cell_hooks.insert(0, self)
        make_pdb_interruptible()

    def cell_started(self) -> None:
        self.pending_interrupt = False
        self._arm()

    def _arm(self) -> None:
        self._timer.arm(self.interval, self.interval)
        self._arm_unblock()
        self._armed = True

    def _arm_unblock(self) -> None:
        if self._unblock is not None:
            self._unblock.arm(self.unblock_after + self.interval / 2, self.unblock_after)

    def cell_finished(self) -> None:
        # (called when the last running cell of any shell ended)
        self.pending_interrupt = False
        if not self._sections:
            self._disarm()

    def _disarm(self) -> None:
        self._timer.disarm()
        if self._unblock is not None:
            self._unblock.disarm()
        self._armed = False

    @contextmanager
    def user_code(self, timeout: float = 5.0):
        """Run user-reachable code (through call_user) on a kernel greenlet, e.g. the control
        greenlet, while a cell may be parked mid-bytecode holding locks that code needs: the
        tick switches away from it as from a cell, so the cell goes on and frees them; after
        `timeout` seconds UserCodeTimeout is raised in it."""
        current = gevent.getcurrent()
        if current in self.kernel.running or current in self._sections or self._timer is None:
            yield  # the cell's own greenlet (or nested): it is already ticked
            return
        self._sections[current] = time.monotonic() + timeout
        if not self._armed:
            self._arm()
        try:
            yield
        finally:
            del self._sections[current]
            if not self._sections and not self.kernel.executing:
                self._disarm()

    def _in_user_code(self, frame, boundaries=None) -> bool:
        """True when every frame up to the cell's boundary belongs to neither gevent, zmq,
        greenlet nor geokernel: only then is it safe to switch greenlets or raise."""
        boundaries = boundaries or self._boundaries
        while frame is not None:
            if frame.f_code in boundaries:
                return True
            name = frame.f_globals.get("__name__") or ""
            if name.startswith(_UNSAFE_PREFIXES):
                return False
            frame = frame.f_back
        return False

    def _executing_here(self) -> bool:
        # a cell or a comm handler of any shell (main or subshell): while it runs user code,
        # the others (and the hub) get their turn here
        return gevent.getcurrent() in self.kernel.running

    def _on_tick(self, signum, frame) -> None:
        __tracebackhide__ = True  # noqa: F841 (IPython hides this frame in tracebacks)
        self.ticks += 1
        if self._armed:
            self._arm_unblock()  # the thread runs Python: nothing to unblock for a while
        deadline = self._sections.get(gevent.getcurrent()) if self._sections else None
        if deadline is not None:
            return self._tick_section(signum, frame, deadline)
        if not self._executing_here() or not self._in_user_code(frame):
            return
        if self.pending_interrupt and gevent.getcurrent() is self.kernel.interrupt_target():
            self.pending_interrupt = False
            raise KeyboardInterrupt
        try:
            if signum == self.unblock_signo:
                # a blocked call returned EINTR: the next chance is unblock_after away, so
                # give a request that just arrived time for its whole round trip
                gevent.sleep(self.unblock_turn)
            else:
                gevent.idle()  # the hub polls I/O and runs ready greenlets, then comes back
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # drop the hub's frames from the traceback

    def _tick_section(self, signum, frame, deadline) -> None:
        __tracebackhide__ = True  # noqa: F841
        if not self._in_user_code(frame, (call_user.__code__,)):
            return
        if time.monotonic() > deadline:
            raise UserCodeTimeout("user code called by the kernel did not return in time "
                                  "(does the running cell hold a lock it needs?)")
        gevent.sleep(self.unblock_turn if signum == self.unblock_signo else 0.001)

    def _deliver_pending(self) -> None:
        # runs on the hub, so the cell's greenlet is parked (or the tick took it already)
        if self.pending_interrupt and self.kernel.executing:
            self.pending_interrupt = False
            self.kernel.throw_into_worker()

    def _on_sigint(self, signum, frame) -> None:
        __tracebackhide__ = True  # noqa: F841
        self.interrupt(frame)

    def interrupt(self, frame=None) -> None:
        __tracebackhide__ = True  # noqa: F841
        k = self.kernel
        target = k.interrupt_target()
        if target is None:
            return  # idle: an interrupt is harmless
        if gevent.getcurrent() is target:
            if frame is not None and self._in_user_code(frame):
                raise KeyboardInterrupt
            self.pending_interrupt = True  # delivered by the next tick at a safe point,
            # or, if the cell parks in a cooperative wait of the kernel's before any tick
            # finds one (`!cmd` reading its terminal), thrown there from the hub
            gevent.get_hub().loop.run_callback(self._deliver_pending)
        else:
            # the cell's greenlet is parked (input, sleep, tick): throw from the hub
            gevent.get_hub().loop.run_callback(k.throw_into, target)
