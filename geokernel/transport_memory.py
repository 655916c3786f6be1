"""An in-memory transport: the kernel's channels without sockets, for dispatcher tests and for
embedding a kernel in a program (akernel runs its kernel on in-memory streams; xeus tests with
`xmock_server`).

Every message crosses the wire codec both ways (serialize, then deserialize), so what a test
sees is exactly what a socket peer would receive: invalid JSON or unsigned frames fail here too.
"""
from __future__ import annotations

from gevent.queue import Queue

from .message import Message
from .transport_base import Transport
from .wire import Codec

CHANNELS = ("shell", "control", "stdin", "iopub")


class MemoryTransport(Transport):
    def __init__(self, codec: Codec, session: str):
        self.codec = codec
        self.session = session
        self.outbox = {ch: Queue() for ch in CHANNELS}  # what the kernel sent, per channel
        self.closed = False

    # the Transport protocol (transport_base.py) -----------------------------------------------
    def bind(self) -> None:
        pass

    def _socket(self, channel: str):
        return None if self.closed else self.outbox.get(channel)

    def _send_frames(self, queue, frames) -> str | None:
        queue.put(self.codec.deserialize(frames))  # what a socket peer would decode
        return None

    def close(self) -> None:
        self.closed = True

    # the client side ---------------------------------------------------------------------------
    def inject(self, channel: str, msg: Message) -> None:
        """Deliver `msg` to the kernel as if a peer had sent it on `channel`."""
        self.deliver(channel, self.codec.serialize(msg))

    def receive(self, channel: str, timeout: float | None = 5.0) -> Message:
        return self.outbox[channel].get(timeout=timeout)
