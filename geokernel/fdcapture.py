"""Capture of file descriptors 1 and 2 (C code, os.system, subprocesses) without a thread.

fd 1/2 are pointed at an in-memory file (memfd) instead of a pipe: a pipe fills up and
deadlocks a child while our only thread is blocked waiting for it (os.system), a memfd never
blocks a writer. The hub reads new bytes with pread on a timer while a cell runs, and once more
before anything else is published; consumed ranges are freed with FALLOC_FL_PUNCH_HOLE so
memory stays bounded by what is written between two drains. Publishing is bounded too: once
`max_backlog` chunks wait for the socket, a drain either waits for them to leave (from a
greenlet, e.g. the cell's: the output keeps its place before what is published next) or leaves
the rest in the memfd for the next drain (from the hub, which must not block).

While the kernel is idle the timer keeps running only as long as a process started by a cell
(or by such a process: `(sleep 1; echo late) &` outlives its shell) is alive, so background
output shows up within an interval, and an idle kernel without children never wakes up.
"""
from __future__ import annotations

import codecs
import ctypes
import fcntl
import logging
import os

import gevent

log = logging.getLogger("geokernel.fdcapture")

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_CHUNK = 1 << 20  # publish at most 1 MiB of text per stream message


def _fallocate():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.fallocate
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        return fn
    except (OSError, AttributeError):
        return None


class FdCapture:
    def __init__(self, fd: int, name: str, publisher, max_backlog: int = 8):
        self.fd, self.name = fd, name
        self._max_backlog = max_backlog  # queued iopub messages (of <= _CHUNK) before holding back
        self._publisher = publisher
        self._mem = os.memfd_create(f"geokernel-{name}", os.MFD_CLOEXEC)
        # O_APPEND: every writer (forked children, shells, C code) shares this file description;
        # appending makes each write() land whole after the others instead of racing on the
        # shared offset (seen: lines of two forked children overwriting each other)
        fcntl.fcntl(self._mem, fcntl.F_SETFL, fcntl.fcntl(self._mem, fcntl.F_GETFL) | os.O_APPEND)
        os.dup2(self._mem, fd)  # fd 1/2 now share the memfd's file description
        self._pos = 0  # how far we have read
        self._freed = 0  # how far holes have been punched
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._punch = _fallocate()
        self._hub = gevent.get_hub()

    @staticmethod
    def available() -> bool:
        return hasattr(os, "memfd_create")

    def drain(self) -> None:
        while True:
            if self._publisher.backlog() >= self._max_backlog:
                if gevent.getcurrent() is self._hub:
                    return  # the rest stays in the memfd (not our memory) until the next drain
                while self._publisher.backlog() >= self._max_backlog:
                    gevent.sleep(0.002)  # the peers' writers run meanwhile
            size = os.fstat(self._mem).st_size
            if size <= self._pos:
                return
            data = os.pread(self._mem, min(size - self._pos, _CHUNK), self._pos)
            if not data:
                return
            self._pos += len(data)
            self._free_consumed()
            text = self._decoder.decode(data)
            if text:
                self._publisher.publish("stream", {"name": self.name, "text": text}, history=False)

    def _free_consumed(self) -> None:
        page = 4096
        end = self._pos - self._pos % page
        if self._punch is None or end <= self._freed:
            return
        if self._punch(self._mem, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE,
                       self._freed, end - self._freed) == 0:
            self._freed = end


class FdPoller:
    """The cell hook that drains the captures: on a timer while a cell runs, and while idle
    for as long as `ChildWatch` sees a live process the kernel started."""

    def __init__(self, captures: list, interval: float = 0.05, check_every: int = 10):
        self._captures = captures
        self._watch = ChildWatch()
        self._check_every = check_every  # idle ticks between two looks for live children
        self._idle_ticks = 0
        self._running_cell = False
        # repeating, re-armed with again(): a re-started one-shot libev timer fires at once
        self._timer = gevent.get_hub().loop.timer(interval, interval)

    def drain(self) -> None:
        for c in self._captures:
            c.drain()

    def cell_started(self) -> None:
        self._running_cell = True
        self._watch.mark()
        self._timer.again(self._tick)  # a full interval from now

    def cell_finished(self) -> None:
        self._running_cell = False
        self._timer.stop()
        self.drain()  # in the cell's greenlet, before the reply: may wait for the socket
        if self._watch.alive():
            self._idle_ticks = 0
            self._timer.again(self._tick)

    def _tick(self) -> None:
        self.drain()
        if self._running_cell:
            return
        self._idle_ticks += 1
        if self._idle_ticks >= self._check_every:
            self._idle_ticks = 0
            if not self._watch.alive():
                self._timer.stop()
                self.drain()  # what the last child wrote before it exited


def _read_last_pid():
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class ChildWatch:
    """Processes started since `mark()` that belong to the kernel: in its session when the
    kernel leads one (jupyter_client starts kernels with a new session, and orphaned
    grandchildren stay in it), else its direct children. Finding them is cheap: only pids
    allocated since the last look are read (ns_last_pid), a full /proc scan only on wrap-around
    or when more than `max_range` pids were allocated meanwhile."""

    def __init__(self, max_range: int = 512):
        self._max_range = max_range
        self._pid = os.getpid()
        self._session = os.getsid(0) == self._pid
        self._pids: set = set()
        self._last = _read_last_pid()

    def mark(self) -> None:
        last = _read_last_pid()
        if last is not None:
            self._last = last

    def alive(self) -> bool:
        last = _read_last_pid()
        if last is None:  # no pid counter: direct children only
            return bool(self._children())
        if last != self._last:
            if self._last is not None and 0 < last - self._last <= self._max_range:
                candidates = range(self._last + 1, last + 1)
            else:
                candidates = (int(n) for n in os.listdir("/proc") if n.isdigit())
            self._pids.update(p for p in candidates if self._ours(p))
            self._last = last
        self._pids = {p for p in self._pids if self._ours(p)}
        return bool(self._pids)

    def _ours(self, pid: int) -> bool:
        if pid == self._pid:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            return False
        fields = data[data.rindex(b")") + 2:].split(b" ", 5)  # state ppid pgrp session ...
        if fields[0] == b"Z":
            return False  # exited, not yet reaped: writes nothing more
        if self._session:
            return int(fields[3]) == self._pid
        return int(fields[1]) == self._pid

    def _children(self) -> list:
        try:
            with open(f"/proc/self/task/{self._pid}/children", "rb") as f:
                return f.read().split()
        except OSError:
            return []
