"""sys.stdout / sys.stderr for the kernel: batched `stream` messages without an IOPub thread.

Writes from the kernel's own thread write through when the stream is quiet: a write that ends
a line is published at once (so "starting" is on the wire before a long C call that holds the
thread). Once something was published, the stream is "hot" for one interval: further writes
are buffered and flushed on a short hub timer, on size, and before anything else is published,
so a loop of prints still costs one message per interval. Writes from other OS threads never
touch the hub directly: they go into a deque and wake the hub through a thread-safe async
watcher.

Buffered text keeps the parent of the request that wrote it (the writer's request context): a
write under another parent publishes what is buffered first, so two cells interleaved at the
tick (main shell and a subshell) never share a message.
"""
from __future__ import annotations

import io
import threading
from collections import deque

import gevent

from .context import CURRENT, current_parent

_get_ident = threading.get_ident
_current_request = CURRENT.get  # bound once: the write path looks it up on every call


class OutStream(io.TextIOBase):
    def __init__(self, name: str, publisher, interval: float = 0.05,
                 max_buffer: int = 256 * 1024, on_write=None, thread_parent=None,
                 fd: int | None = None):
        super().__init__()
        self.name = name
        self._fd = fd  # the captured descriptor (1/2) fileno() hands out; None: no capture
        self._hot = False  # published within the last interval: batch instead of writing through
        self._publisher = publisher
        self._max = max_buffer
        self._buf: list = []
        self._buf_parent: dict = {}  # the parent header of the buffered text
        self._size = 0
        self._owner = _get_ident()
        self._armed = False  # the flush timer is running
        self._writes = 0
        self._on_write = on_write  # cooperative-yield hook from the kernel
        self._thread_parent = thread_parent  # callable() -> parent header for other threads
        loop = gevent.get_hub().loop
        # a repeating timer re-armed with again() and stopped by flush(): libev keeps a fired
        # one-shot timer's remaining time (0), so start() again would fire at once
        self._timer = loop.timer(interval, interval)
        self._foreign: deque = deque()
        self._wakeup = loop.async_()
        self._wakeup.start(self.flush)
        self._wakeup.ref = False  # a pending wake-up must not keep the loop alive
        publisher.streams.append(self)

    # io.TextIOBase API
    encoding = "utf-8"
    errors = "replace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        """The captured fd (faulthandler, subprocess.run(stdout=sys.stdout), C libraries):
        what is written to it is drained into this cell's output. Text buffered in either
        stream is published first so the two stay in order."""
        if self._fd is None:
            raise io.UnsupportedOperation("kernel streams have no file descriptor")
        if _get_ident() == self._owner:
            self._publisher.flush_streams()
        return self._fd

    def write(self, s) -> int:
        # the hot path of every print(): keep it short
        if s.__class__ is not str:
            if isinstance(s, (bytes, bytearray)):
                s = bytes(s).decode("utf-8", "replace")
            elif not isinstance(s, str):
                raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        if not n:
            return 0
        if _get_ident() != self._owner:
            parent = self._thread_parent() if self._thread_parent else self._publisher.thread_parent()
            self._foreign.append((parent, s))
            self._wakeup.send()
            return n
        pub = self._publisher
        ctx = _current_request(None)
        parent = ctx.header if ctx is not None else current_parent()
        if parent is not self._buf_parent:
            if self._buf:
                self._publish_buffer()
            self._buf_parent = parent
        if pub.last_stream is not self:  # keep stdout/stderr interleaving in write order
            if pub.last_stream is not None:
                pub.last_stream.flush()
            pub.last_stream = self
        self._buf.append(s)
        self._size += n
        if self._size >= self._max:
            self._publish_buffer()
        elif not self._hot and s[-1] == "\n":
            self._hot = True  # quiet until now: write the line through, batch what follows
            self._publish_buffer()
        if not self._armed:
            self._armed = True
            self._timer.again(self._on_timer)
        self._writes += 1
        if self._writes >= 64 and self._on_write is not None:
            self._writes = 0  # the cooperative-yield hook looks at the clock every 64 writes
            self._on_write()
        return n

    def flush(self) -> None:
        if _get_ident() != self._owner:
            return  # other threads' text is already queued for the hub
        self._timer.stop()
        self._armed = self._hot = False
        if self._buf:
            self._publish_buffer()
        else:
            self._publisher.drain_fds()  # sys.stderr.flush() also orders what C wrote before it
        if self._foreign:
            self._publish_foreign()

    def _on_timer(self) -> None:
        # one interval passed: publish what piled up and stay hot, or go quiet
        if self._buf:
            self._publish_buffer()
        else:
            self._timer.stop()
            self._armed = self._hot = False
        if self._foreign:
            self._publish_foreign()

    def _publish_buffer(self) -> None:
        if self._buf:
            self._publisher.drain_fds()  # what C code or a child wrote earlier goes first
            text = "".join(self._buf)
            self._buf.clear()
            self._size = 0
            self._publisher.publish("stream", {"name": self.name, "text": text},
                                    parent_header=self._buf_parent)

    def _publish_foreign(self) -> None:
        # one message per run of writes with the same parent, in arrival order
        groups: list = []
        while self._foreign:
            parent, s = self._foreign.popleft()
            if groups and groups[-1][0] is parent:
                groups[-1][1].append(s)
            else:
                groups.append((parent, [s]))
        for parent, parts in groups:
            self._publisher.publish("stream", {"name": self.name, "text": "".join(parts)},
                                    parent_header=parent)

    def close_watchers(self) -> None:
        self._timer.stop()
        self._wakeup.stop()
