"""What both transports share: decoding and routing what arrives on a channel, and the JEP 65
iopub_welcome on every new subscription. Subclasses own the sockets and their greenlets.

Nothing a peer sends may end a channel's greenlet: every exception from decoding or handling
one message (RecursionError from deeply nested JSON, MemoryError, a bug) is contained to that
message, logged with a rate limit, and the message dropped."""
from __future__ import annotations

import logging

import gevent

from .message import Message, make_header
from .wire import WireError
from .zmtp.ratelog import RateLimitedLog

log = logging.getLogger("geokernel.transport")
limited = RateLimitedLog(log)


class ChannelDispatch:
    codec = None  # wire.Codec
    session = ""
    handlers: dict  # channel name -> callable(Message), set by whoever assembles the kernel
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

    def send(self, channel: str, msg: Message) -> None:
        raise NotImplementedError
