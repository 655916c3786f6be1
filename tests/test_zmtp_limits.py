"""The limits of our ZMTP (geokernel.zmtp.limits.Limits): frame/message size, handshake
timeout, inbox backpressure, outbox bounds, subscription caps, welcome rate, connection cap,
accept back-off, ERROR commands both ways, PONG context. Raw TCP peers (gevent sockets in this
thread) and pyzmq peers against our server sockets on 127.0.0.1."""
from __future__ import annotations

import errno
import struct

import gevent
import pytest
import zmq
from gevent import socket as gsocket

from geokernel.zmtp import framing as F
from geokernel.zmtp import sockets as zsockets
from geokernel.zmtp.limits import Limits
from geokernel.zmtp.sockets import RouterSocket, XPubSocket
from test_zmtp import _client, _pump, _recv, _srecv, serve  # noqa: F401  (fixture)


def _addr(url: str):
    host, port = url[len("tcp://"):].rsplit(":", 1)
    return host.strip("[]"), int(port)


def raw_peer(url: str, socket_type: str = "DEALER", identity: bytes | None = None,
             handshake: bool = True):
    """A raw TCP peer that speaks just enough ZMTP by hand."""
    s = gsocket.create_connection(_addr(url))
    if handshake:
        s.sendall(F.build_greeting(minor=1) + F.build_ready(socket_type, identity))
    return s


def read_until_closed(s, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (b'' then)."""
    out = b""
    with gevent.Timeout(timeout):
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
    return out


def server_commands(data: bytes) -> list:
    """(name, body) of every command in what a server sent after its greeting."""
    conn = F.Connection("DEALER", ())
    conn.state = "open"  # parse frames only
    conn._frames = []
    out, pos = [], 64
    while pos + 2 <= len(data):
        flags = data[pos]
        if flags & F.LONG:
            (size,) = struct.unpack_from(">Q", data, pos + 1)
            start = pos + 9
        else:
            size, start = data[pos + 1], pos + 2
        body = data[start:start + size]
        if flags & F.COMMAND:
            out.append(F.parse_command(body))
        pos = start + size
    return out


# ---- sans-IO --------------------------------------------------------------------------------

def test_frame_over_the_limit_fails_at_its_header():
    conn = F.Connection("ROUTER", ("DEALER",), max_frame_size=1000)
    conn.feed(F.build_greeting() + F.build_ready("DEALER"))
    with pytest.raises(F.ProtocolError, match="exceeds"):
        conn.feed(struct.pack(">BQ", F.LONG, 1 << 62))  # no body at all: the header is enough
    assert b"ERROR" in conn.data_to_send()
    assert not conn._buf


def test_message_over_the_limit_counts_all_frames():
    conn = F.Connection("ROUTER", ("DEALER",), max_message_size=1000)
    conn.feed(F.build_greeting() + F.build_ready("DEALER"))
    assert conn.feed(b"".join(F.encode_message([b"x" * 600], [])))  # one frame: fine
    with pytest.raises(F.ProtocolError, match="exceeds"):
        conn.feed(b"".join(F.encode_message([b"x" * 600, b"y" * 600], [])))


def test_too_many_frames():
    conn = F.Connection("ROUTER", ("DEALER",), max_frames=10)
    conn.feed(F.build_greeting() + F.build_ready("DEALER"))
    with pytest.raises(F.ProtocolError, match="frames"):
        conn.feed(b"".join(F.encode_message([b""] * 11, [])))


def test_socket_type_mismatch_sends_error():
    conn = F.Connection("ROUTER", ("DEALER",))
    with pytest.raises(F.ProtocolError, match="cannot talk"):
        conn.feed(F.build_greeting() + F.build_ready("PUB"))
    assert (b"ERROR", b"\x13invalid socket type") in server_commands(conn.data_to_send())


def test_error_after_the_handshake_closes():
    conn = F.Connection("ROUTER", ("DEALER",))
    conn.feed(F.build_greeting() + F.build_ready("DEALER"))
    with pytest.raises(F.ProtocolError, match="peer sent ERROR: bye"):
        conn.feed(F.encode_error("bye"))


def test_pong_context_is_capped():
    conn = F.Connection("ROUTER", ("DEALER",))
    conn.feed(F.build_greeting() + F.build_ready("DEALER"))
    conn.data_to_send()
    conn.feed(F.encode_command(b"PING", b"\x00\x0a" + b"c" * 200))
    assert server_commands(b"\x00" * 64 + conn.data_to_send()) == [(b"PONG", b"c" * 16)]


# ---- over sockets -----------------------------------------------------------------------------

def test_huge_frame_header_closes_the_connection_at_once(serve):
    router, url = serve(RouterSocket)
    s = raw_peer(url, identity=b"big")
    s.sendall(struct.pack(">BQ", F.LONG, 2 << 30) + b"x" * 1000)  # declares 2 GiB
    data = read_until_closed(s)
    assert (b"ERROR", b"\x11message too large") in server_commands(data)
    _pump(lambda: not router._all)
    s.close()


def test_handshake_timeout(serve):
    router, url = serve(RouterSocket, limits=Limits(handshake_timeout=0.3))
    silent = raw_peer(url, handshake=False)
    truncated = raw_peer(url, handshake=False)
    truncated.sendall(F.build_greeting()[:30])
    assert len(read_until_closed(silent)) == 64  # our greeting, then closed
    assert len(read_until_closed(truncated)) == 64
    ok = _client(zmq.DEALER, url, identity=b"ok")  # a real peer still gets in, and stays
    ok.send(b"hi")
    assert _srecv(router) == [b"ok", b"hi"]
    gevent.sleep(0.6)
    assert router.send([b"ok", b"still here"])
    assert _recv(ok) == [b"still here"]
    ok.close()
    for s in (silent, truncated):
        s.close()


def test_inbox_full_stops_reading_that_peer(serve):
    router, url = serve(RouterSocket, limits=Limits(inbox_messages=10))
    flood = _client(zmq.DEALER, url, identity=b"flood", opts={zmq.SNDHWM: 0})
    for i in range(2000):
        flood.send(b"%d" % i)
    gevent.sleep(0.3)
    peer = router.by_id[b"flood"]
    assert peer.inbox_messages == 10 and router._inbox.qsize() == 10
    got = [_srecv(router)[1] for _ in range(2000)]  # nothing lost once the kernel reads again
    assert got == [b"%d" % i for i in range(2000)]
    assert peer.inbox_messages == 0 and peer.inbox_bytes == 0
    flood.close()


def test_inbox_bytes_bound(serve):
    router, url = serve(RouterSocket, limits=Limits(inbox_bytes=100_000))
    flood = _client(zmq.DEALER, url, identity=b"big", opts={zmq.SNDHWM: 0})
    for _ in range(50):
        flood.send(b"x" * 30_000)
    gevent.sleep(0.3)
    assert router._inbox.qsize() == 4  # 4 x 30 kB reach the 100 kB bound
    assert len([_srecv(router) for _ in range(50)]) == 50
    flood.close()


def test_outbox_bytes_bound(serve):
    router, url = serve(RouterSocket, limits=Limits(outbox_bytes=16 << 20))
    dealer = _client(zmq.DEALER, url, identity=b"slow")
    dealer.send(b"x")
    _srecv(router)
    # the first message goes out at once as far as the socket takes it (more than any socket
    # buffer: the rest is queued); the next ones queue behind it until the byte bound
    mib = 1 << 20
    sizes = [8 * mib, 3 * mib, 3 * mib, 3 * mib]
    results = [router.send([b"slow", b"m" * n]) for n in sizes]  # no hub turn in between
    assert results == [True, True, True, False]  # 8 + 3 + 3 fit in 16 MiB, a fourth does not
    assert [len(_recv(dealer)[0]) for _ in range(3)] == sizes[:3]
    _pump(lambda: router.by_id[b"slow"]._queued == 0)
    assert router.send([b"slow", b"y" * (20 * mib)])  # bigger than the bound, but nothing queued
    assert len(_recv(dealer)[0]) == 20 * mib
    dealer.close()


def test_outbox_counts_the_batch_being_written(serve):
    """The bound holds while the writer is blocked in sendall (it used to reset to 0)."""
    router, url = serve(RouterSocket, limits=Limits(outbox_bytes=4 << 20))
    dealer = _client(zmq.DEALER, url, identity=b"stuck", opts={zmq.RCVHWM: 1})
    dealer.send(b"x")
    _srecv(router)
    peer = router.by_id[b"stuck"]
    sent = 0
    for _ in range(400):  # 400 x 1 MB into a client that does not read
        if router.send([b"stuck", b"z" * (1 << 20)]):
            sent += 1
        gevent.sleep(0.001)
    assert peer._queued_bytes <= (4 << 20)
    assert sent < 400
    dealer.close()


def test_subscription_cap_and_welcome_rate(serve):
    xpub, url = serve(XPubSocket, limits=Limits(max_subscriptions=50, welcome_burst=3,
                                               welcome_interval=3600))
    s = raw_peer(url, "SUB")
    s.sendall(b"".join(F.encode_command(b"SUBSCRIBE", b"t%d" % i) for i in range(500)))
    _pump(lambda: xpub.subs and len(next(iter(xpub.subs.values())).topics) == 50)
    gevent.sleep(0.2)
    assert len(next(iter(xpub.subs.values())).topics) == 50
    assert [_srecv(xpub) for _ in range(3)] == [b"\x01t0", b"\x01t1", b"\x01t2"]
    assert xpub._inbox.qsize() == 0  # no more reports: no welcome flood
    other = _client(zmq.SUB, url, opts={zmq.SUBSCRIBE: b""})  # a new peer still gets reported
    assert _srecv(xpub) == b"\x01"
    s.close()
    _pump(lambda: len(xpub.subs) == 1)
    assert set(xpub._topic_peers) == {b""}  # the closed peer's topics are forgotten
    other.close()


def test_matching_narrow_and_everything(serve):
    xpub, url = serve(XPubSocket)
    narrow = _client(zmq.SUB, url, opts={zmq.SUBSCRIBE: b"kernel.x"})
    many = _client(zmq.SUB, url)
    for i in range(100):
        many.setsockopt(zmq.SUBSCRIBE, b"t%03d" % i)
    everything = _client(zmq.SUB, url, opts={zmq.SUBSCRIBE: b""})
    _pump(lambda: len(xpub._everything) == 1 and len(xpub._narrow) == 2
          and sum(len(s.topics) for s in xpub.subs.values()) == 102)
    xpub.send([b"kernel.x.stream", b"1"])
    xpub.send([b"t042", b"2"])
    xpub.send([b"zzz", b"3"])
    assert _recv(narrow) == [b"kernel.x.stream", b"1"]
    assert _recv(many) == [b"t042", b"2"]
    assert [_recv(everything) for _ in range(3)] == [[b"kernel.x.stream", b"1"], [b"t042", b"2"], [b"zzz", b"3"]]
    gevent.sleep(0.05)
    assert not narrow.poll(50) and not many.poll(50)
    for s in (narrow, many, everything):
        s.close()


def test_connection_cap_waits_for_a_free_slot(serve):
    router, url = serve(RouterSocket, limits=Limits(max_connections=2))
    a, b = raw_peer(url), raw_peer(url)
    _pump(lambda: len(router._all) == 2)
    c = raw_peer(url, identity=b"third")
    gevent.sleep(0.3)
    assert len(router._all) == 2  # not accepted yet: waits in the backlog
    a.close()
    _pump(lambda: b"third" in router.by_id)  # accepted as soon as a slot is free
    for s in (b, c):
        s.close()


def test_accept_backs_off_on_errors(monkeypatch):
    delays = []
    real_sleep = gevent.sleep

    class FailingListener:
        calls = 0

        def accept(self):
            self.calls += 1
            if self.calls > 6:
                raise gevent.GreenletExit
            raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(zsockets.gevent, "sleep", lambda d=0: (delays.append(d), real_sleep(0)))
    server = RouterSocket(limits=Limits(accept_backoff=0.01, accept_backoff_max=0.05))
    g = gevent.spawn(server._accept_loop, FailingListener(), True)
    g.join(5)
    monkeypatch.setattr(zsockets.gevent, "sleep", real_sleep)
    assert delays == [0.01, 0.02, 0.04, 0.05, 0.05, 0.05]


def test_error_from_peer_after_handshake_closes_it(serve):
    router, url = serve(RouterSocket)
    s = raw_peer(url, identity=b"quitter")
    _pump(lambda: b"quitter" in router.by_id)
    s.sendall(F.encode_error("going away"))
    _pump(lambda: b"quitter" not in router.by_id)
    read_until_closed(s)
    s.close()


def test_wrong_socket_type_gets_error_then_close(serve):
    router, url = serve(RouterSocket)
    s = raw_peer(url, "PUB")
    assert (b"ERROR", b"\x13invalid socket type") in server_commands(read_until_closed(s))
    s.close()
