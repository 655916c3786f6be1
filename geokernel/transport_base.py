"""What both transports share: decoding and routing what arrives on a channel, and the JEP 65
iopub_welcome on every new subscription. Subclasses own the sockets and their greenlets."""
from __future__ import annotations

import logging

from .message import Message, make_header
from .wire import WireError

log = logging.getLogger("geokernel.transport")


class ChannelDispatch:
    codec = None  # wire.Codec
    session = ""
    handlers: dict  # channel name -> callable(Message), set by whoever assembles the kernel

    def deliver(self, channel: str, frames) -> None:
        """Decode one received message and hand it on; bad input is logged and dropped."""
        try:
            msg = self.codec.deserialize(frames)
        except WireError as e:
            log.warning("dropped a message on %s: %s", channel, e)
            return
        handler = self.handlers.get(channel)
        if handler is None:
            return
        try:
            handler(msg)
        except Exception:
            log.exception("error while handling %s on %s", msg.msg_type, channel)

    def subscription_event(self, event: bytes) -> None:
        if event[:1] == b"\x01":  # a new subscription: welcome it (JEP 65)
            topic = event[1:].decode("utf-8", "replace")
            header = make_header("iopub_welcome", self.session)
            self.send("iopub", Message(header, content={"subscription": topic}))

    def send(self, channel: str, msg: Message) -> None:
        raise NotImplementedError
