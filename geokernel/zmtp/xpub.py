"""Server-side XPUB: publishes to peers whose subscriptions prefix-match the first frame.

Subscriptions are reported to `recv` as b"\\x01topic" (every subscribe, as XPUB_VERBOSE does)
and b"\\x00topic" (the last unsubscribe of a topic across peers); the kernel answers each
subscribe with a JEP 65 iopub_welcome, so the reports are rate limited per peer
(limits.welcome_burst, then one per limits.welcome_interval) and a peer holds at most
limits.max_subscriptions topics: no subscription flood can become a welcome flood.

Cost: subscribe/unsubscribe O(1); publishing O(1) per peer subscribed to everything (b"", what
every Jupyter client does), O(min(topics, len(topic))) per peer with narrower topics.
"""
from __future__ import annotations

import logging
import time

from .framing import encode_message
from .ratelog import RateLimitedLog
from .sockets import ServerSocket

log = logging.getLogger("geokernel.zmtp")
limited = RateLimitedLog(log)


class _Subscriber:
    __slots__ = ("topics", "tokens", "refilled")

    def __init__(self, burst: int):
        self.topics: dict = {}  # topic -> times subscribed
        self.tokens = float(burst)  # subscription reports this peer may still make
        self.refilled = time.monotonic()


class XPubSocket(ServerSocket):
    socket_type = "XPUB"
    peer_types = ("SUB", "XSUB")

    def __init__(self, name: str = "", hwm: int | None = None, **kw):
        super().__init__(name, hwm, **kw)
        self.subs: dict = {}  # peer -> _Subscriber, for every handshaken peer
        self._everything: dict = {}  # peers subscribed to b"" (an ordered set)
        self._narrow: dict = {}  # peers with at least one non-empty topic (ordered set)
        self._topic_peers: dict = {}  # topic -> number of peers subscribed to it

    def on_ready(self, peer, props: dict) -> None:
        self.subs[peer] = _Subscriber(self.limits.welcome_burst)
        self.peers.add(peer)

    def on_message(self, peer, frames: list) -> None:
        # ZMTP 3.0: a subscription is a one-frame message, 0x01 (subscribe) / 0x00 + topic
        if len(frames) == 1 and frames[0][:1] in (b"\x00", b"\x01"):
            self._subscription(peer, frames[0][0] == 1, frames[0][1:])

    def on_command(self, peer, name: bytes, data: bytes) -> None:
        if name == b"SUBSCRIBE":  # ZMTP 3.1
            self._subscription(peer, True, data)
        elif name == b"CANCEL":
            self._subscription(peer, False, data)
        else:
            super().on_command(peer, name, data)

    def _may_report(self, sub: _Subscriber) -> bool:
        """Token bucket: welcome_burst reports, refilled at one per welcome_interval."""
        now = time.monotonic()
        limits = self.limits
        if limits.welcome_interval > 0:
            sub.tokens = min(float(limits.welcome_burst),
                             sub.tokens + (now - sub.refilled) / limits.welcome_interval)
        sub.refilled = now
        if sub.tokens < 1:
            return False
        sub.tokens -= 1
        return True

    def _subscription(self, peer, subscribe: bool, topic: bytes) -> None:
        sub = self.subs.get(peer)
        if sub is None:
            return
        topics = sub.topics
        if subscribe:
            count = topics.get(topic)
            if count is None:
                if len(topics) >= self.limits.max_subscriptions:
                    limited.warning("subs:" + self.name, "%s: ignored a subscription: the peer "
                                    "already has %d", self.name, len(topics))
                    return
                topics[topic] = 1
                self._topic_peers[topic] = self._topic_peers.get(topic, 0) + 1
                (self._narrow if topic else self._everything)[peer] = None
            else:
                topics[topic] = count + 1
            if self._may_report(sub):
                self._put(peer, b"\x01" + topic, len(topic) + 1)
        elif topic in topics:
            topics[topic] -= 1
            if not topics[topic]:
                self._forget(peer, topics, topic)
                if topic not in self._topic_peers and self._may_report(sub):
                    self._put(peer, b"\x00" + topic, len(topic) + 1)

    def _forget(self, peer, topics: dict, topic: bytes) -> None:
        del topics[topic]
        n = self._topic_peers[topic] - 1
        if n:
            self._topic_peers[topic] = n
        else:
            del self._topic_peers[topic]
        if not topic:
            self._everything.pop(peer, None)
        elif len(topics) == (b"" in topics):
            self._narrow.pop(peer, None)

    def on_close(self, peer) -> None:
        sub = self.subs.pop(peer, None)
        if sub is not None:
            for topic in list(sub.topics):
                self._forget(peer, sub.topics, topic)
        super().on_close(peer)

    @staticmethod
    def _matches(topics: dict, topic: bytes) -> bool:
        if len(topics) <= len(topic):
            return any(topic.startswith(t) for t in topics)
        return any(topic[:i] in topics for i in range(len(topic) + 1))

    def send(self, frames) -> bool | None:
        """Encode once, queue to every matching peer; False if any peer dropped it at its
        outbox bounds, None if nobody matched."""
        everything, narrow = self._everything, self._narrow
        if not everything and not narrow:
            return None
        parts = nbytes = None
        result = None
        targets = everything
        if narrow:
            topic = frames[0]
            if not isinstance(topic, bytes):
                topic = bytes(topic)
            subs = self.subs
            targets = list(everything)
            targets.extend(p for p in narrow if p not in everything
                           and self._matches(subs[p].topics, topic))
        for peer in targets:
            if peer.encrypted:
                ok = peer.send(frames)  # per-connection keys: encoded for each peer
            else:
                if parts is None:
                    parts = encode_message(frames, [])
                    nbytes = sum(map(len, parts))
                ok = peer.send_parts(parts, nbytes)
            result = ok if result is None else (result and ok)
        return result
