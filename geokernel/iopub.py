"""Publishing on iopub with the right parent; streams are flushed before anything else so
output stays in order with displays, errors and replies. The parent of a message is the request
context of the code that publishes it (geokernel/context.py), unless given explicitly."""
from __future__ import annotations

import threading
from collections import deque

from . import context
from .message import Message, make_header


class Publisher:
    def __init__(self, send, session: str, backlog=None):
        """send: callable(channel, Message), usually Transport.send; backlog: callable() ->
        iopub messages not yet on the wire (fd output waits on it; None: never waits)."""
        self._send = send
        self.session = session
        # other OS threads (widgets updated from a thread) never touch the sockets: their
        # messages are queued and sent by the hub, woken through a thread-safe async watcher
        self._owner = threading.get_ident()
        self._foreign: deque = deque()
        self._wakeup = None
        self.fd_captures: list = []  # fd 1/2 captures: drained before any Python-level output
        self.streams: list = []  # sys.stdout / sys.stderr
        self.last_stream = None  # the stream written to last, flushed when the other writes
        self.on_stream = None  # callable(name, text, parent) per stream message: output history
        self.backlog = backlog or (lambda: 0)
        # callable() -> the parent of another OS thread's message (geokernel/threads.py)
        self.thread_parent = lambda: context.latest().header

    @property
    def parent_header(self) -> dict:
        """The parent of what the caller publishes now (compatibility: the request context is
        the source of truth; assigning binds a parent in the calling greenlet only)."""
        return context.current_parent()

    @parent_header.setter
    def parent_header(self, header: dict) -> None:
        context.set_current_header(header)

    def drain_fds(self) -> None:
        for c in self.fd_captures:
            c.drain()

    def flush_streams(self) -> None:
        self.drain_fds()
        for s in self.streams:
            s.flush()
        if self._foreign and threading.get_ident() == self._owner:
            self._send_queued()  # other threads' messages go before what comes next

    def publish(self, msg_type: str, content: dict, parent_header: dict | None = None,
                metadata: dict | None = None, buffers: list | None = None,
                history: bool = True) -> None:
        """`history=False`: a stream that IPython's output history does not keep (fd output:
        it never passes through sys.stdout, as on ipykernel; 200 MB from a child stay out)."""
        if parent_header is None:
            parent_header = context.current_parent() if threading.get_ident() == self._owner \
                else self.thread_parent()
        msg = Message(make_header(msg_type, self.session), parent_header, metadata or {},
                      content, buffers or [])
        if threading.get_ident() != self._owner:
            if msg_type != "stream":
                self._queue_foreign_streams()  # a thread's earlier prints go first
            self._foreign.append(msg)
            self._wake()
            return
        if msg_type != "stream":
            self.flush_streams()
        elif self.on_stream is not None and history:
            self.on_stream(content["name"], content["text"], parent_header)
        self._send("iopub", msg)

    def _wake(self) -> None:
        if self._wakeup is None:
            raise RuntimeError("publishing from another thread before enable_threads()")
        self._wakeup.send()

    def enable_threads(self, loop) -> None:
        self._wakeup = loop.async_()
        self._wakeup.start(self._send_foreign)
        self._wakeup.ref = False

    def _send_foreign(self) -> None:
        self.flush_streams()

    def _send_queued(self) -> None:
        while self._foreign:
            self._send("iopub", self._foreign.popleft())

    def _queue_foreign_streams(self) -> None:
        # (in the writing thread) move text other threads wrote so far into our queue, so a
        # comm update sent after a print stays after it (ipywidgets' Output fed from a thread)
        for stream in self.streams:
            queued = getattr(stream, "_foreign", None)
            runs: list = []
            while queued:
                parent, text = queued.popleft()
                if runs and runs[-1][0] is parent:
                    runs[-1][1].append(text)
                else:
                    runs.append((parent, [text]))
            for parent, parts in runs:
                self._foreign.append(Message(make_header("stream", self.session), parent, {},
                                             {"name": stream.name, "text": "".join(parts)}, []))
