"""The Transport protocol every transport implements (ZMTP, libzmq, in memory), and what they
share: decoding and routing what arrives on a channel, the JEP 65 iopub_welcome on every new
subscription, encoding and the drop warning on send. Subclasses own the sockets.

    t = SomeTransport(..., codec, session)   # nothing bound yet
    t.bind()                                 # TransportError if a port is taken
    t.start(handlers)                        # {"shell"|"control"|"stdin": callable(Message)}
    t.send(channel, msg)                     # never blocks, never switches greenlets
    t.backlog("iopub")                       # messages not yet on the wire (fd output waits)
    t.close(); t.term()                      # stop serving; let the last replies leave

Nothing a peer sends may end a channel's greenlet: every exception from decoding or handling
one message (RecursionError from deeply nested JSON, MemoryError, a bug) is contained to that
message, logged with a rate limit, and the message dropped."""
from __future__ import annotations

import logging

import gevent

from .message import Message, make_header
from .wire import WireError
from .zmtp.errors import TransportError  # noqa: F401  (raised by bind() of every transport)
from .zmtp.ratelog import RateLimitedLog

log = logging.getLogger("geokernel.transport")
limited = RateLimitedLog(log)

CHANNELS = ("shell", "control", "stdin", "iopub", "hb")


class Transport:
    codec = None  # wire.Codec
    session = ""
    handlers: dict = {}  # channel name -> callable(Message), given to start()
    # a TokenBucket for iopub_welcome where the socket cannot limit them per peer (libzmq's
    # XPUB reports every subscription of every peer); None: the socket already limits them
    welcome_limiter = None
    # messages one channel's loop handles in a row before it lets the other channels run
    fair_share = 64

    def deliver(self, channel: str, frames) -> None:
        """Decode one received message and hand it on; bad input is logged and dropped."""
        try:
            msg = self.codec.deserialize(frames)
        except WireError as e:
            limited.warning("drop:" + channel, "dropped a message on %s: %s", channel, str(e))
            return
        except Exception as e:  # MemoryError, or a bug in the codec: still only this message
            limited.warning("decode:" + channel, "dropped a message on %s: cannot decode it (%s: %s)",
                            channel, type(e).__name__, str(e))
            return
        handler = self.handlers.get(channel)
        if handler is None:
            return
        try:
            handler(msg)
        except Exception:
            try:
                msg_type = msg.msg_type
            except Exception:
                msg_type = "?"
            limited.exception("handle:" + channel, "error while handling %s on %s", msg_type, channel)

    def serve(self, channel: str, recv, handle=None) -> None:
        """A channel's receive loop: `handle(recv())` forever (default: deliver), whatever one
        message does: deliver already contains its errors; this catches the rest."""
        if handle is None:
            def handle(frames):
                self.deliver(channel, frames)
        served = 0
        while True:
            item = recv()
            served += 1
            if served % self.fair_share == 0:
                # a recv with data waiting returns without a hub turn: under a flood on one
                # channel the others (the heartbeat) would wait for the whole flood
                gevent.idle()
            try:
                handle(item)
            except Exception:
                try:
                    limited.exception("serve:" + channel, "error on %s (message dropped)", channel)
                except Exception:  # MemoryError while logging: keep serving regardless
                    pass
            item = None  # drop the reference before blocking in recv again

    def subscription_event(self, event: bytes) -> None:
        if event[:1] == b"\x01":  # a new subscription: welcome it (JEP 65)
            if self.welcome_limiter is not None and not self.welcome_limiter.take():
                limited.warning("welcome", "not welcoming an iopub subscription: too many")
                return
            topic = event[1:].decode("utf-8", "replace")
            header = make_header("iopub_welcome", self.session)
            self.send("iopub", Message(header, content={"subscription": topic}))

    def encode(self, channel: str, msg: Message):
        """Frames of `msg`, or None (logged) if it cannot be encoded, e.g. a parent header
        that a peer nested too deeply to serialize again."""
        try:
            return self.codec.serialize(msg)
        except (RecursionError, MemoryError) as e:
            limited.warning("encode:" + channel, "dropped %s message on %s: cannot encode it (%s)",
                            msg.msg_type, channel, type(e).__name__)
            return None

    # ---- the protocol ------------------------------------------------------------------------
    def bind(self) -> None:
        raise NotImplementedError

    def start(self, handlers: dict) -> None:
        """Deliver what arrives on shell/control/stdin to `handlers` from now on."""
        self.handlers = dict(handlers)
        self._start_serving()

    def send(self, channel: str, msg: Message) -> None:
        sock = self._socket(channel)
        if sock is None:
            return
        frames = self.encode(channel, msg)
        if frames is None:
            return
        dropped = self._send_frames(sock, frames)
        if dropped:
            limited.warning("hwm:" + channel, "dropped %s message on %s: %s", msg.msg_type,
                            channel, dropped)

    def backlog(self, channel: str) -> int:
        return 0

    def close(self) -> None:
        raise NotImplementedError

    def term(self) -> None:
        pass

    # ---- what a subclass provides ------------------------------------------------------------
    def _start_serving(self) -> None:
        """Spawn the greenlets that receive (and call serve())."""

    def _socket(self, channel: str):
        """The socket (or queue) of `channel`, None when closed."""
        raise NotImplementedError

    def _send_frames(self, sock, frames) -> str | None:
        """Queue `frames` without blocking; the reason when they were dropped, else None."""
        raise NotImplementedError
