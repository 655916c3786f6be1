"""Memory returns when a peer leaves, without the cyclic GC: with gc disabled, the Peer (and
with it its buffers) is freed as soon as the connection ends, whichever way it ends."""
from __future__ import annotations

import gc
import struct
import weakref

import gevent
import pytest
import zmq

from geokernel.zmtp import framing as F
from geokernel.zmtp.limits import Limits
from geokernel.zmtp.sockets import RouterSocket, XPubSocket
from test_zmtp import _client, _pump, _srecv, serve  # noqa: F401  (fixture)
from test_zmtp_limits import raw_peer, read_until_closed


@pytest.fixture()
def no_gc():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def only_peer(server):
    _pump(lambda: len(server._all) == 1)
    return weakref.ref(next(iter(server._all)))


def assert_freed(server, ref):
    _pump(lambda: not server._all)
    for _ in range(5):  # killed greenlets finish on the next hub turns
        gevent.sleep(0.01)
    assert ref() is None, gc.get_referrers(ref())


def test_clean_disconnect(serve, no_gc):
    router, url = serve(RouterSocket)
    dealer = _client(zmq.DEALER, url, identity=b"bye")
    dealer.send(b"x" * 100_000)
    assert _srecv(router)[0] == b"bye"
    ref = only_peer(router)
    router.send([b"bye", b"reply"])
    dealer.close()
    assert_freed(router, ref)


def test_half_received_big_frame_then_disconnect(serve, no_gc):
    router, url = serve(RouterSocket)
    s = raw_peer(url)
    ref = only_peer(router)
    s.sendall(struct.pack(">BQ", F.LONG, 100 << 20) + b"x" * (20 << 20))  # 20 of 100 MB
    _pump(lambda: ref() is None or len(ref().conn._buf) >= 20 << 20)
    s.close()
    assert_freed(router, ref)


def test_closed_for_a_huge_header(serve, no_gc):
    router, url = serve(RouterSocket)
    s = raw_peer(url)
    ref = only_peer(router)
    s.sendall(struct.pack(">BQ", F.LONG, 2 << 30))
    read_until_closed(s)
    assert_freed(router, ref)
    s.close()


def test_closed_for_the_handshake_timeout(serve, no_gc):
    router, url = serve(RouterSocket, limits=Limits(handshake_timeout=0.2))
    s = raw_peer(url, handshake=False)
    ref = only_peer(router)
    read_until_closed(s)
    assert_freed(router, ref)
    s.close()


def test_slow_subscriber_with_a_full_outbox_disconnects(serve, no_gc):
    xpub, url = serve(XPubSocket)
    s = raw_peer(url, "SUB")
    s.sendall(F.encode_command(b"SUBSCRIBE", b""))
    assert _srecv(xpub) == b"\x01"
    ref = only_peer(xpub)
    for _ in range(100):  # never read: the writer blocks, the queue holds the rest
        xpub.send([b"topic", b"z" * (1 << 20)])
        gevent.sleep(0)
    assert ref()._queued_bytes > 10 << 20
    s.close()
    assert_freed(xpub, ref)


def test_peer_sends_error(serve, no_gc):
    router, url = serve(RouterSocket)
    s = raw_peer(url, identity=b"e")
    ref = only_peer(router)
    _pump(lambda: b"e" in router.by_id)
    s.sendall(F.encode_error("bye"))
    read_until_closed(s)
    assert_freed(router, ref)
    s.close()
