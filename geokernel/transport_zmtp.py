"""The five channels over our own pure-Python ZMTP (geokernel.zmtp): no libzmq in the process,
so the kernel really is one OS thread (libzmq always adds an I/O thread and a reaper).

The default transport; the Transport protocol is in transport_base.py (the libzmq one,
GEOKERNEL_TRANSPORT=zmq, is transport_zmq.py).
Sends never block or switch greenlets: bytes are queued per peer and flushed by the peer's
writer greenlet; at a peer's high-water mark messages are dropped with a warning (as zmq's
ROUTER and XPUB drop).
"""
from __future__ import annotations

import logging
import time

import gevent

from .connection import ConnectionInfo
from .transport_base import Transport, TransportError
from .wire import Codec
from .zmtp.limits import Limits
from .zmtp.sockets import RepSocket, RouterSocket, XPubSocket

log = logging.getLogger("geokernel.transport")

__all__ = ["ZmtpTransport", "TransportError"]  # TransportError: from bind()

LINGER = 1.0  # seconds term() waits for queued messages to leave (zmq transport: linger=1000)


class ZmtpTransport(Transport):
    def __init__(self, info: ConnectionInfo, codec: Codec, session: str, limits: Limits | None = None):
        self.info = info
        self.limits = limits  # zmtp.limits.Limits of every socket (None: the documented defaults)
        self.codec = codec
        self.session = session
        self.sockets: dict = {}
        self.greenlets: list = []
        self._closed: list = []

    def bind(self) -> None:
        kinds = {"shell": RouterSocket, "control": RouterSocket, "stdin": RouterSocket,
                 "iopub": XPubSocket, "hb": RepSocket}
        for name, kind in kinds.items():
            sock = kind(name, limits=self.limits, mechanism_factory=self._mechanism(kind.socket_type))
            url = self.info.url(name)
            try:
                sock.bind(url)
            except OSError as e:
                sock.close(linger=False)
                self.close()
                reason = e.strerror or str(e)
                raise TransportError(f"cannot bind {name} channel to {url}: {reason}") from None
            self.sockets[name] = sock

    def _mechanism(self, socket_type: str):
        """A factory of CurveZMQ mechanisms when the connection file has keys, else None (NULL)."""
        if self.info.curve_secretkey is None:
            return None
        try:
            from .zmtp.curve import CurveServer, load_key
        except ImportError:
            raise TransportError("the connection file asks for CurveZMQ encryption, which needs "
                                 "PyNaCl: pip install pynacl") from None
        try:
            public, secret = load_key(self.info.curve_publickey), load_key(self.info.curve_secretkey)
        except ValueError as e:
            raise TransportError(f"bad CURVE key in the connection file: {e}") from None
        return lambda: CurveServer(public, secret, socket_type)

    def _start_serving(self) -> None:
        for sock in self.sockets.values():
            sock.start()
        for name in ("shell", "control", "stdin"):
            self.greenlets.append(gevent.spawn(self.serve, name, self.sockets[name].recv))
        self.greenlets.append(gevent.spawn(self.serve, "iopub", self.sockets["iopub"].recv,
                                           self.subscription_event))
        # the heartbeat echoes inside the hb peer's reader greenlet (RepSocket's default handler)

    def _socket(self, channel: str):
        return self.sockets.get(channel)

    def _send_frames(self, sock, frames) -> str | None:
        return "high-water mark reached" if sock.send(frames) is False else None

    def backlog(self, channel: str) -> int:
        """Messages queued for the slowest peer of a channel (fd output waits on this)."""
        sock = self.sockets.get(channel)
        return max((p._queued for p in sock.peers), default=0) if sock is not None else 0

    def close(self) -> None:
        """Stop serving; queued messages keep flushing until term() (or forever, briefly)."""
        for g in self.greenlets:
            g.kill(block=False)
        self.greenlets.clear()
        for sock in self.sockets.values():
            sock.close(linger=True)
        self._closed.extend(self.sockets.values())
        self.sockets.clear()

    def term(self) -> None:
        """Wait (up to LINGER) for the last replies to leave, then close every connection."""
        deadline = time.monotonic() + LINGER
        for sock in self._closed:
            sock.join(max(0.0, deadline - time.monotonic()))
        self._closed.clear()
