"""The five channels over libzmq through zmq.green (GEOKERNEL_TRANSPORT=zmq; libzmq adds an
I/O and a reaper thread), each socket owned by exactly one receiving greenlet. The Transport
protocol is in transport_base.py.

Sends happen from any greenlet with NOBLOCK (ROUTER and XPUB never block on send: they drop
at the high-water mark instead), so no second greenlet ever waits on a socket.
"""
from __future__ import annotations

import logging

import gevent
import zmq
import zmq.green as zmqg

from .connection import ConnectionInfo
from .transport_base import Transport, TransportError
from .wire import Codec
from .zmtp.ratelog import TokenBucket

log = logging.getLogger("geokernel.transport")


class ZmqTransport(Transport):
    def __init__(self, info: ConnectionInfo, codec: Codec, session: str):
        self.info = info
        self.codec = codec
        self.session = session
        self.ctx = zmqg.Context()
        self.sockets: dict = {}
        self.greenlets: list = []
        # a subscription flood must not become a welcome flood to every client
        self.welcome_limiter = TokenBucket(burst=32, rate=8.0)

    def bind(self) -> None:
        kinds = {"shell": zmq.ROUTER, "control": zmq.ROUTER, "stdin": zmq.ROUTER,
                 "iopub": zmq.XPUB, "hb": zmq.REP}
        for name, kind in kinds.items():
            sock = self.ctx.socket(kind)
            sock.linger = 1000
            if self.info.curve_secretkey is not None:  # CurveZMQ server, as ipykernel 7.3+
                if not zmq.has("curve"):
                    self.close()
                    raise TransportError("the connection file asks for CurveZMQ encryption, but "
                                         "this libzmq has no CURVE support")
                sock.curve_secretkey = self.info.curve_secretkey
                sock.curve_publickey = self.info.curve_publickey
                sock.curve_server = True
            if kind == zmq.ROUTER:
                sock.router_handover = 1  # a reconnecting client with the same identity wins
            if kind == zmq.XPUB:
                sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, for iopub_welcome
                sock.sndhwm = 100_000
            url = self.info.url(name)
            try:
                sock.bind(url)
            except zmq.ZMQError as e:
                self.close()
                raise TransportError(f"cannot bind {name} channel to {url}: {e.strerror}") from None
            self.sockets[name] = sock

    def _start_serving(self) -> None:
        for name in ("shell", "control", "stdin"):
            sock = self.sockets[name]
            self.greenlets.append(gevent.spawn(self.serve, name,
                                               lambda sock=sock: sock.recv_multipart(copy=True)))
        self.greenlets.append(gevent.spawn(self.serve, "iopub", self.sockets["iopub"].recv,
                                           self.subscription_event))
        self.greenlets.append(gevent.spawn(self._serve_heartbeat))

    def _socket(self, channel: str):
        return self.sockets.get(channel)

    def _send_frames(self, sock, frames) -> str | None:
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=len(frames) > 6)
        except zmq.ZMQError as e:  # EAGAIN at the high-water mark, or a closed socket
            return str(e)
        return None

    def term(self) -> None:
        self.ctx.term()  # waits (up to linger) for the last replies to leave

    def close(self) -> None:
        for g in self.greenlets:
            g.kill(block=False)
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    def _serve_heartbeat(self) -> None:
        sock = self.sockets["hb"]
        while True:
            sock.send(sock.recv(copy=False))
