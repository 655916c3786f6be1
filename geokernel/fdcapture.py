"""Capture of file descriptors 1 and 2 (C code, os.system, subprocesses) without a thread.

fd 1/2 are pointed at an in-memory file (memfd) instead of a pipe: a pipe fills up and
deadlocks a child while our only thread is blocked waiting for it (os.system), a memfd never
blocks a writer. The hub reads new bytes with pread on a timer while a cell runs, and once more
before anything else is published; consumed ranges are freed with FALLOC_FL_PUNCH_HOLE so
memory stays bounded by what is written between two drains.
"""
from __future__ import annotations

import codecs
import ctypes
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
    def __init__(self, fd: int, name: str, publisher, interval: float = 0.05):
        self.fd, self.name = fd, name
        self._publisher = publisher
        self._mem = os.memfd_create(f"geokernel-{name}", os.MFD_CLOEXEC)
        os.dup2(self._mem, fd)  # fd 1/2 now share the memfd's file description (and offset)
        self._pos = 0  # how far we have read
        self._freed = 0  # how far holes have been punched
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._punch = _fallocate()
        self._timer = gevent.get_hub().loop.timer(interval, interval)

    @staticmethod
    def available() -> bool:
        return hasattr(os, "memfd_create")

    # started/stopped around each cell by the kernel: no wake-ups while idle
    def cell_started(self) -> None:
        self._timer.again(self.drain)  # a full interval from now (start() resumes what was left)

    def cell_finished(self) -> None:
        self._timer.stop()
        self.drain()

    def drain(self) -> None:
        while True:
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
                self._publisher.publish("stream", {"name": self.name, "text": text})

    def _free_consumed(self) -> None:
        page = 4096
        end = self._pos - self._pos % page
        if self._punch is None or end <= self._freed:
            return
        if self._punch(self._mem, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE,
                       self._freed, end - self._freed) == 0:
            self._freed = end
