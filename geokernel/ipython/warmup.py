"""Warm IPython's completer (and jedi under it) while the kernel is idle, so the user's first
completion does not pay jedi's first inference of builtins (~0.4-0.9 s, longer than JupyterLab
waits for a completion reply on a busy machine).

When: after the first cell has run (`after="execute"`, the default), so a kernel nobody uses
(a hub's idle kernels) stays small: the warmed completer holds ~30-40 MiB of jedi's inference
state per kernel; `after="start"` (GEOKERNEL_WARM_COMPLETER=start) warms right after start-up,
GEOKERNEL_WARM_COMPLETER=0 never.

Never in the way: the warm-up starts only after the interpreter is loaded and the kernel has
been idle for `idle_for` seconds, runs one short completion at a time, and gives up a step the
moment a request arrives: a POSIX timer (a real-time signal the kernel reserves, SIGRTMIN+14)
fires every `check_every` seconds during a step, and its handler raises `_Aborted` into the
step when one of the kernel's sockets is readable; a heartbeat ping (jupyter_client's clients
send one every second) only once the step has run `hb_grace` seconds, so an echo is never
later than that and a step shorter than it always gets done. The step is retried after the
next idle period;
after `max_aborts` aborted steps the warm-up gives up (a client that keeps the kernel busy, or
pings its heartbeat faster than a step takes, would otherwise cost CPU for nothing). jedi cannot yield in the middle of an inference (and must not be
re-entered by a real completion), so aborting, not yielding, is what keeps a request's wait
under `check_every`. Pooled kernels skip this: their zygote warmed jedi before the fork.
"""
from __future__ import annotations

import io
import logging
import select
import signal
import socket
import sys
import time

import gevent

from ..ownsockets import socket_fds_on_ports

log = logging.getLogger("geokernel.warmup")

# what a first completion in a notebook typically asks: module names, builtins, attributes
CODES = ("import o", "pri", "import os; os.pa", "'abc'.st")


class _Aborted(BaseException):
    """A request arrived during a warm-up step (BaseException: jedi's `except Exception`
    handlers must not swallow it)."""


def _forget_partial_parses() -> None:
    """An abort can stop parso's diff parser while it rewrites its cached tree of the last
    completed code in place; the next completion would trip over that half-rewritten tree
    (seen: "'Name' object has no attribute 'children'"). Drop parso's in-memory trees (they
    are parsed again) and jedi's time caches."""
    try:
        import parso.cache

        parso.cache.parser_cache.clear()
    except Exception:
        pass
    try:
        import jedi.cache

        jedi.cache.clear_time_caches(True)
    except Exception:
        pass


def request_sockets(ports: dict, skip=()) -> list[int]:
    """The kernel's own listening and connected TCP sockets (their local port is a kernel
    port), except those of the channels in `skip`."""
    return socket_fds_on_ports({p for ch, p in ports.items() if ch not in skip})


class CompleterWarmup:
    """kernel: has `executing`; completer: IPython's (`completions(code, pos)`); ports: the
    kernel's {channel: port}; codes: what to complete; idle_for: seconds the kernel must have
    been idle before each step (default 0.5); check_every: seconds between checks for a
    request during a step (default 0.005: the longest a request waits for a step); signo: the
    real-time signal of the check timer (default SIGRTMIN+14, reserved like the tick's);
    max_aborts: aborted steps after which the warm-up gives up (default 8); hb_grace: seconds
    a step may keep a heartbeat ping waiting (default 0.25)."""

    def __init__(self, kernel, completer, ports: dict, codes=CODES, idle_for: float = 0.5,
                 check_every: float = 0.005, signo: int | None = None, max_aborts: int = 8,
                 hb_grace: float = 0.25):
        self.kernel, self.completer, self.ports, self.codes = kernel, completer, ports, codes
        self.max_aborts, self.hb_grace = max_aborts, hb_grace
        self._hb_fds: set[int] = set()
        self._step_started = 0.0
        self.idle_for, self.check_every = idle_for, check_every
        self.signo = signal.SIGRTMIN + 14 if signo is None else signo
        self.done = None  # a gevent Event, set when the warm-up ended (done or not possible)
        self.aborted = 0  # steps given up because a request came (for tests and logs)
        self.completed = False  # every code completed once
        self._fds: list[int] = []
        self._active = None  # the greenlet running a step, while the timer is armed

    def start(self):
        import gevent.event

        self.done = gevent.event.Event()
        return gevent.spawn(self._run)

    def _idle(self) -> bool:
        if self.kernel.executing or self._debugging():
            return False
        self._fds = request_sockets(self.ports)
        try:
            return not select.select(self._fds, [], [], 0)[0]
        except (OSError, ValueError):
            return False

    def _run(self) -> None:
        from ..posix_timer import PosixTimer

        if not request_sockets(self.ports):  # (an ipc transport): no way to see a request come
            self.done.set()
            return
        try:
            timer = PosixTimer(self.signo)
            previous = signal.signal(self.signo, self._on_timer)
        except (OSError, ValueError) as e:  # no way to abort a step: do not risk a delay
            log.info("no completer warm-up: %s", e)
            self.done.set()
            return
        try:
            for code in self.codes:
                while True:
                    gevent.sleep(self.idle_for)
                    if not self._idle():
                        continue
                    self._after_next_ping()
                    if self._step(code, timer):
                        break
                    self.aborted += 1
                    if self.aborted >= self.max_aborts:
                        log.info("completer warm-up given up after %d aborted steps", self.aborted)
                        return
            self.completed = True
        finally:
            timer.disarm()
            timer.close()
            signal.signal(self.signo, previous)
            self.done.set()

    def _debugging(self) -> bool:
        """A debug session is on: pydevd may trace this greenlet too, and jedi's internal
        exceptions would stop at the user's exception breakpoints (seen: a stop in
        typing_extensions.py). The warm-up waits until the session ends."""
        handlers = getattr(self.kernel, "control_handlers", None) or {}
        session = getattr(handlers.get("debug_request"), "session", None)
        return bool(getattr(session, "started", False))

    def _after_next_ping(self, wait: float = 1.5) -> None:
        """With a client pinging the heartbeat (jupyter_client: every second), start a step
        right after a ping has been echoed: the next one is then ~1 s away, so a step up to
        about that long is never cut short by it."""
        connected = []
        for fd in request_sockets(self.ports, skip=tuple(c for c in self.ports if c != "hb")):
            try:
                s = socket.socket(fileno=fd)
                try:
                    if not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                        connected.append(fd)
                finally:
                    s.detach()
            except OSError:
                continue
        if connected:
            from gevent.select import select as cooperative_select

            cooperative_select(connected, [], [], wait)
            gevent.sleep(0.02)  # the echo goes out

    def _step(self, code: str, timer) -> bool:
        from IPython.core.completer import provisionalcompleter

        self._fds = request_sockets(self.ports)
        self._hb_fds = set(request_sockets(self.ports, skip=tuple(c for c in self.ports
                                                                   if c != "hb")))
        self._step_started = time.monotonic()
        aborted = []
        # IPython's completer catches BaseException from a matcher and prints its traceback
        # through sys.excepthook: our abort lands there most of the time. Nothing of a warm-up
        # may reach the user's cell, so the hook and the streams are ours during a step (no
        # other greenlet runs during it: jedi never yields).
        saved = sys.excepthook, sys.stdout, sys.stderr
        sys.excepthook = lambda t, v, tb: aborted.append(v) if isinstance(v, _Aborted) else \
            log.debug("completer warm-up of %r: a matcher failed", code, exc_info=(t, v, tb))
        sys.stdout = sys.stderr = io.StringIO()
        self._active = gevent.getcurrent()
        try:
            try:
                timer.arm(self.check_every, self.check_every)
                with provisionalcompleter():
                    list(self.completer.completions(code, len(code)))
            finally:
                self._active = None  # first: from here on the handler raises no more
                timer.disarm()
        except _Aborted as e:
            timer.disarm()  # (the abort may have come before the disarm above)
            aborted.append(e)
        except Exception:  # a warm-up failing is no error of the user's
            log.debug("completer warm-up of %r failed", code, exc_info=True)
        finally:
            sys.excepthook, sys.stdout, sys.stderr = saved
        if aborted:
            _forget_partial_parses()
            return False
        return True

    def _on_timer(self, signum, frame) -> None:
        if self._active is None or gevent.getcurrent() is not self._active:
            return
        try:
            readable, _, _ = select.select(self._fds, [], [], 0)
        except (OSError, ValueError):
            readable = True
        if readable is True or any(fd not in self._hb_fds for fd in readable) or (
                readable and time.monotonic() - self._step_started > self.hb_grace):
            self._active = None
            raise _Aborted()


WHEN = ("execute", "start")


def start(kernel, shell, ports: dict, after: str = "execute") -> CompleterWarmup:
    """Warm `shell`'s completer in the kernel's idle time (see the module's doc)."""
    if after not in WHEN:
        raise ValueError(f"after={after!r}: one of {WHEN}")
    warmup = CompleterWarmup(kernel, shell.Completer, ports)
    if after == "start":
        warmup.start()
        return warmup

    def first_cell_ran(*args):  # IPython's post_run_cell: no timer, no wake-up until then
        shell.events.unregister("post_run_cell", first_cell_ran)
        warmup.start()

    shell.events.register("post_run_cell", first_cell_ran)
    return warmup
