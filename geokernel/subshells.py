"""Shells and kernel subshells (JEP 91) as greenlets of the kernel's one thread.

Each shell has its own queue and worker greenlet: the main shell (subshell id None) and every
subshell made by create_subshell_request. Requests of one shell run in order; requests of
different shells interleave only where a greenlet switches: at a cooperative wait (a print,
input, sleep, a socket) or at the execution tick, which switches only while the running code is
user code (never inside the kernel's own sends), so a subshell's request is answered while the
main shell runs a long cell, without threads and their races.
"""
from __future__ import annotations

import itertools
import logging
import uuid

import gevent
from gevent.queue import PriorityQueue

log = logging.getLogger("geokernel.subshells")

_STOP = object()


class UnknownSubshellError(KeyError):
    """A subshell_id that names no subshell of this kernel (the ename clients see)."""

    def __init__(self, subshell_id):
        super().__init__(subshell_id)
        self.subshell_id = subshell_id

    def __str__(self) -> str:
        return f"Unknown subshell_id {self.subshell_id!r}"


class Shell:
    """One queue of shell requests and the greenlet that handles them in order. `run` is
    callable(channel, msg, shell): the dispatcher. Priorities: 0 for shell requests that came
    on control (ahead of the queue), 1 for the shell channel."""

    def __init__(self, subshell_id: str | None, run):
        self.subshell_id = subshell_id
        self._run = run
        self.queue: PriorityQueue = PriorityQueue()
        self._arrival = itertools.count()
        self.aborting = False  # execute requests are aborted until the queue has drained
        self.worker = None
        self.stopped = False
        self.busy = False  # handling a request now

    def start(self) -> None:
        self.worker = gevent.spawn(self._loop)

    def put(self, channel: str, msg, priority: int = 1) -> None:
        if not self.stopped:
            self.queue.put((priority, next(self._arrival), channel, msg))

    def stop(self) -> None:
        """No new requests; what is queued is dropped, a request running now finishes."""
        self.stopped = True
        dropped = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            dropped += 1
        if dropped:
            log.info("subshell %s deleted: %d queued requests dropped", self.subshell_id, dropped)
        self.queue.put((-1, -1, None, _STOP))

    def _loop(self) -> None:
        while True:
            if self.aborting and self.queue.empty():
                self.aborting = False
            _, _, channel, msg = self.queue.get()
            if msg is _STOP:
                return
            self.busy = True
            try:
                self._run(channel, msg, self)
            except BaseException:  # a late interrupt must never kill the worker
                log.exception("shell worker survived an exception")
            finally:
                self.busy = False

    def pending(self) -> bool:
        """A request is running or waiting."""
        return self.busy or not self.queue.empty()


class TooManySubshells(RuntimeError):
    """create_subshell_request beyond the kernel's limit."""


class Subshells:
    """The subshells of one kernel: create, delete, list, and the shell for a subshell id.
    `max_subshells` (default 256): a greenlet each is cheap, but a client that never deletes
    them must not grow the kernel without bound (JupyterLab makes one per comm target and
    console)."""

    def __init__(self, main: Shell, run, max_subshells: int = 256):
        self.main = main
        self._run = run
        self._shells: dict = {}
        self.max_subshells = max_subshells

    def create(self) -> str:
        if len(self._shells) >= self.max_subshells:
            raise TooManySubshells(f"this kernel has {len(self._shells)} subshells, its limit "
                                   f"(delete_subshell_request frees one)")
        subshell_id = str(uuid.uuid4())
        shell = Shell(subshell_id, self._run)
        shell.start()
        self._shells[subshell_id] = shell
        return subshell_id

    def delete(self, subshell_id) -> None:
        shell = self._shells.pop(subshell_id, None)
        if shell is None:
            raise UnknownSubshellError(subshell_id)
        shell.stop()

    def ids(self) -> list:
        return list(self._shells)

    def get(self, subshell_id) -> Shell:
        """The shell a request's header names (None or absent: the main shell)."""
        if subshell_id is None:
            return self.main
        shell = self._shells.get(subshell_id)
        if shell is None:
            raise UnknownSubshellError(subshell_id)
        return shell

    def all(self) -> list:
        return [self.main, *self._shells.values()]
