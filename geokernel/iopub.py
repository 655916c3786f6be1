"""Publishing on iopub with the right parent; streams are flushed before anything else so
output stays in order with displays, errors and replies."""
from __future__ import annotations

from .message import Message, make_header


class Publisher:
    def __init__(self, send, session: str):
        self._send = send  # callable(channel, Message), usually Transport.send
        self.session = session
        self.parent_header: dict = {}  # header of the shell request being handled
        self.streams: list = []  # flushed in order: fd captures first, then sys.stdout/err
        self.last_stream = None  # the stream written to last, flushed when the other writes

    def flush_streams(self) -> None:
        for s in self.streams:
            s.flush()

    def publish(self, msg_type: str, content: dict, parent_header: dict | None = None,
                metadata: dict | None = None, buffers: list | None = None) -> None:
        if msg_type != "stream":
            self.flush_streams()
        if parent_header is None:
            parent_header = self.parent_header
        msg = Message(make_header(msg_type, self.session), parent_header, metadata or {},
                      content, buffers or [])
        self._send("iopub", msg)
