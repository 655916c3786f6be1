"""Server-side ROUTER, XPUB and REP over gevent sockets (bind only; peers connect to us).

Each socket listens on tcp (IPv4/IPv6) or ipc addresses, accepts connections in one greenlet,
and gives every connection a Peer (reader + writer greenlets). Received messages go to an
gevent Queue (`recv`) bounded per peer (limits.Limits.inbox_*: the peer's reader stops), except
REP which answers in the peer's reader greenlet (the heartbeat echo then needs no extra
greenlet switch). XPUB lives in xpub.py.
"""
from __future__ import annotations

import logging
import time
import os
import socket as _stdsocket

import gevent
from gevent import socket as gsocket
from gevent.queue import Queue

from gevent.event import Event

from .limits import Limits
from .peer import Peer
from .ratelog import RateLimitedLog

log = logging.getLogger("geokernel.zmtp")
limited = RateLimitedLog(log)


def _listen(url: str):
    """A listening gevent socket for tcp://host:port or ipc://path; (socket, ipc path or None)."""
    scheme, sep, addr = url.partition("://")
    if not sep or scheme not in ("tcp", "ipc"):
        raise OSError(f"unsupported address {url!r}")
    if scheme == "ipc":
        try:
            os.unlink(addr)  # a file left behind by an earlier run (libzmq does the same)
        except FileNotFoundError:
            pass
        sock = gsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        return _bind_and_listen(sock, addr), addr
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    if host in ("*", ""):
        host = "0.0.0.0"
    infos = _stdsocket.getaddrinfo(host, int(port), _stdsocket.AF_UNSPEC, _stdsocket.SOCK_STREAM,
                                   0, _stdsocket.AI_PASSIVE)
    family, type_, proto, _, sockaddr = infos[0]
    sock = gsocket.socket(family, type_, proto)
    sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
    return _bind_and_listen(sock, sockaddr), None


def _bind_and_listen(sock, address):
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class ServerSocket:
    socket_type = ""
    peer_types: tuple = ()

    def __init__(self, name: str = "", hwm: int | None = None, limits: Limits | None = None,
                 mechanism_factory=None):
        """`hwm`, if given, overrides limits.outbox_messages (zmq's SNDHWM).
        `mechanism_factory()`: a new security mechanism per connection (None: NULL)."""
        self.name = name or self.socket_type.lower()
        limits = limits or Limits()
        if hwm is not None:
            limits = limits.replace(outbox_messages=hwm)
        self.limits = limits
        self.mechanism_factory = mechanism_factory
        self.peers: set = set()  # handshaken peers that messages may be routed to
        self._all: set = set()  # every live connection, handshaken or not
        self._listeners: list = []  # (socket, ipc path or None)
        self._acceptors: list = []
        self._inbox: Queue = Queue()  # (peer, item, bytes)
        self._room = Event()  # set while fewer than max_connections are open
        self._room.set()
        self._lingering: list = []  # connections flushing after close(linger=True)

    @property
    def hwm(self) -> int:
        return self.limits.outbox_messages

    def bind(self, url: str) -> None:
        """Raises OSError (EADDRINUSE, ...) like zmq's bind raises ZMQError."""
        self._listeners.append(_listen(url))

    @property
    def addresses(self) -> list:
        """Bound addresses (getsockname), e.g. to learn the port after binding port 0."""
        return [lsock.getsockname() for lsock, _ in self._listeners]

    def start(self) -> None:
        for lsock, path in self._listeners:
            self._acceptors.append(gevent.spawn(self._accept_loop, lsock, path is None))

    def recv(self):
        peer, item, nbytes = self._inbox.get()
        peer.took(nbytes)
        return item

    def _put(self, peer: Peer, item, nbytes: int) -> None:
        """Hand an item to `recv`, counted against the peer's inbox bounds."""
        peer.inbox_messages += 1
        peer.inbox_bytes += nbytes
        if not peer._has_room():
            peer._room.clear()
        self._inbox.put((peer, item, nbytes))

    def _accept_loop(self, lsock, tcp: bool) -> None:
        # the back-off pattern of gevent's BaseServer: a failing accept (EMFILE: out of file
        # descriptors) waits, doubling the delay, instead of spinning
        limits = self.limits
        delay = limits.accept_backoff
        while True:
            if len(self._all) >= limits.max_connections:
                limited.warning("maxconn:" + self.name, "%s: %d connections open: not accepting "
                                "more until one closes", self.name, len(self._all))
                self._room.clear()
                self._room.wait()
                continue
            try:
                sock, _ = lsock.accept()
            except OSError as e:
                limited.warning("accept:" + self.name, "%s: accept failed: %s (retrying in %.2f s)",
                                self.name, str(e), delay)
                gevent.sleep(delay)
                delay = min(delay * 2, limits.accept_backoff_max)
                continue
            delay = limits.accept_backoff
            if tcp:  # latency over throughput, as libzmq does
                sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            mechanism = self.mechanism_factory() if self.mechanism_factory else None
            self._all.add(Peer(sock, self, limits, mechanism))
            sock = None

    # ---- called by Peer ----------------------------------------------------------------------
    def on_ready(self, peer: Peer, props: dict) -> None:
        self.peers.add(peer)

    def on_message(self, peer: Peer, frames: list) -> None:
        self._put(peer, frames, sum(map(len, frames)))

    def on_command(self, peer: Peer, name: bytes, data: bytes) -> None:
        log.debug("%s: ignored command %r", self.name, name)

    def on_close(self, peer: Peer) -> None:
        self.peers.discard(peer)
        self._all.discard(peer)
        if not self._room.is_set() and len(self._all) < self.limits.max_connections:
            self._room.set()

    # ---- closing -------------------------------------------------------------------------------
    def close(self, linger: bool = True) -> None:
        """Stop listening and receiving. With linger, each connection flushes its queue and then
        closes by itself (see `join`); without, everything closes now."""
        for g in self._acceptors:
            g.kill(block=False)
        self._acceptors.clear()
        for lsock, path in self._listeners:
            lsock.close()
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self._listeners.clear()
        peers = list(self._all)
        for p in peers:
            if linger:
                p.shutdown()
                self._lingering.append(p)
            else:
                p.close()
        self.peers.clear()
        self._all.clear()

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` for lingering connections to flush; then close them."""
        deadline = time.monotonic() + timeout
        for p in self._lingering:
            p.join(max(0.0, deadline - time.monotonic()))
            p.close()
        self._lingering.clear()


class RouterSocket(ServerSocket):
    """Outgoing: the first frame names the peer. Incoming: the peer's identity is prepended."""
    socket_type = "ROUTER"
    peer_types = ("DEALER", "REQ", "ROUTER")

    def __init__(self, name: str = "", hwm: int | None = None, **kw):
        super().__init__(name, hwm, **kw)
        self.by_id: dict = {}

    def on_ready(self, peer: Peer, props: dict) -> None:
        identity = props.get("identity") or b""
        if not identity:
            identity = b"\x00" + os.urandom(4)  # like libzmq's generated ids: 0x00 + 4 bytes
            while identity in self.by_id:
                identity = b"\x00" + os.urandom(4)
        old = self.by_id.get(identity)
        if old is not None:  # ROUTER_HANDOVER: the newcomer takes the identity over
            log.debug("%s: identity %r handed over to a new connection", self.name, identity)
            old.close()
        peer.identity = identity
        self.by_id[identity] = peer
        self.peers.add(peer)

    def on_message(self, peer: Peer, frames: list) -> None:
        frames.insert(0, peer.identity)
        self._put(peer, frames, sum(map(len, frames)))

    def on_close(self, peer: Peer) -> None:
        if peer.identity is not None and self.by_id.get(peer.identity) is peer:
            del self.by_id[peer.identity]
        super().on_close(peer)

    def send(self, frames) -> bool | None:
        """True if queued, False if dropped at the high-water mark, None if no such peer
        (zmq drops unroutable messages silently)."""
        identity = frames[0]
        if not isinstance(identity, bytes):
            identity = bytes(identity)
        peer = self.by_id.get(identity)
        if peer is None:
            return None
        return peer.send(frames[1:])


class RepSocket(ServerSocket):
    """Each request's envelope (frames up to and including the first empty frame) goes back
    with the reply, to the peer that sent it. `handler(body frames) -> reply frames`."""
    socket_type = "REP"
    peer_types = ("REQ", "DEALER")

    def __init__(self, name: str = "", hwm: int | None = None, handler=None, **kw):
        super().__init__(name, hwm, **kw)
        self.handler = handler or (lambda frames: frames)  # echo: the heartbeat

    def on_message(self, peer: Peer, frames: list) -> None:
        for i, f in enumerate(frames):
            if not f:
                break
        else:
            log.debug("%s: dropped a request without an envelope", self.name)
            return
        reply = self.handler(frames[i + 1:])
        if reply is not None:
            peer.send(frames[:i + 1] + list(reply))


from .xpub import XPubSocket  # noqa: E402,F401  (re-exported: it builds on ServerSocket)
