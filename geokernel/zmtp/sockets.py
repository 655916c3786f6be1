"""Server-side ROUTER, XPUB and REP over gevent sockets (bind only; peers connect to us).

Each socket listens on tcp (IPv4/IPv6) or ipc addresses, accepts connections in one greenlet,
and gives every connection a Peer (reader + writer greenlets). Received messages go to an
unbounded gevent Queue (`recv`), except REP which answers in the peer's reader greenlet
(the heartbeat echo then needs no extra greenlet switch).
"""
from __future__ import annotations

import logging
import time
import os
import socket as _stdsocket

import gevent
from gevent import socket as gsocket
from gevent.queue import Queue

from .framing import encode_message
from .peer import Peer

log = logging.getLogger("geokernel.zmtp")


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

    def __init__(self, name: str = "", hwm: int = 100_000):
        self.name = name or self.socket_type.lower()
        self.hwm = hwm
        self.peers: set = set()  # handshaken peers that messages may be routed to
        self._all: set = set()  # every live connection, handshaken or not
        self._listeners: list = []  # (socket, ipc path or None)
        self._acceptors: list = []
        self._inbox: Queue = Queue()
        self._lingering: list = []  # connections flushing after close(linger=True)

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

    def recv(self) -> list:
        return self._inbox.get()

    def _accept_loop(self, lsock, tcp: bool) -> None:
        while True:
            try:
                sock, _ = lsock.accept()
            except OSError as e:
                log.warning("%s: accept failed: %s", self.name, e)
                gevent.sleep(0.1)
                continue
            if tcp:  # latency over throughput, as libzmq does
                sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            self._all.add(Peer(sock, self, self.hwm))

    # ---- called by Peer ----------------------------------------------------------------------
    def on_ready(self, peer: Peer, props: dict) -> None:
        self.peers.add(peer)

    def on_message(self, peer: Peer, frames: list) -> None:
        self._inbox.put(frames)

    def on_command(self, peer: Peer, name: bytes, data: bytes) -> None:
        log.debug("%s: ignored command %r", self.name, name)

    def on_close(self, peer: Peer) -> None:
        self.peers.discard(peer)
        self._all.discard(peer)

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

    def __init__(self, name: str = "", hwm: int = 100_000):
        super().__init__(name, hwm)
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
        self._inbox.put(frames)

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


class XPubSocket(ServerSocket):
    """Publishes to peers whose subscriptions prefix-match the first frame. Every subscribe
    (and the last unsubscribe of a topic) is delivered to `recv` as b"\\x01topic"/b"\\x00topic",
    like XPUB_VERBOSE."""
    socket_type = "XPUB"
    peer_types = ("SUB", "XSUB")

    def __init__(self, name: str = "", hwm: int = 100_000):
        super().__init__(name, hwm)
        self.subs: dict = {}  # peer -> {topic: count}

    def on_ready(self, peer: Peer, props: dict) -> None:
        self.subs[peer] = {}
        self.peers.add(peer)

    def on_message(self, peer: Peer, frames: list) -> None:
        # ZMTP 3.0: a subscription is a one-frame message, 0x01 (subscribe) / 0x00 + topic
        if len(frames) == 1 and frames[0][:1] in (b"\x00", b"\x01"):
            self._subscription(peer, frames[0][0] == 1, frames[0][1:])

    def on_command(self, peer: Peer, name: bytes, data: bytes) -> None:
        if name == b"SUBSCRIBE":  # ZMTP 3.1
            self._subscription(peer, True, data)
        elif name == b"CANCEL":
            self._subscription(peer, False, data)
        else:
            super().on_command(peer, name, data)

    def _subscription(self, peer: Peer, subscribe: bool, topic: bytes) -> None:
        topics = self.subs.get(peer)
        if topics is None:
            return
        if subscribe:
            topics[topic] = topics.get(topic, 0) + 1
            self._inbox.put(b"\x01" + topic)
        elif topic in topics:
            topics[topic] -= 1
            if not topics[topic]:
                del topics[topic]
                if not any(topic in t for t in self.subs.values()):
                    self._inbox.put(b"\x00" + topic)

    def on_close(self, peer: Peer) -> None:
        self.subs.pop(peer, None)
        super().on_close(peer)

    def send(self, frames) -> bool | None:
        """Encode once, queue to every matching peer; False if any peer dropped it at the
        high-water mark, None if nobody matched."""
        if not self.subs:
            return None
        topic = frames[0]
        if not isinstance(topic, bytes):
            topic = bytes(topic)
        parts = None
        result = None
        for peer, topics in self.subs.items():
            if b"" in topics or any(topic.startswith(t) for t in topics):
                if parts is None:
                    parts = encode_message(frames, [])
                ok = peer.send_parts(parts)
                result = ok if result is None else (result and ok)
        return result


class RepSocket(ServerSocket):
    """Each request's envelope (frames up to and including the first empty frame) goes back
    with the reply, to the peer that sent it. `handler(body frames) -> reply frames`."""
    socket_type = "REP"
    peer_types = ("REQ", "DEALER")

    def __init__(self, name: str = "", hwm: int = 100_000, handler=None):
        super().__init__(name, hwm)
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
