"""geokernel.zmtp: sans-IO framing, then interop with real pyzmq (libzmq) client sockets.

Our server sockets run in gevent greenlets of this thread; pyzmq's blocking client sockets do
their I/O in libzmq's own threads, and every wait on them here polls with a zero timeout and
gives the hub a turn (`_pump`) so the server keeps running."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

import gevent
import pytest
import zmq

from geokernel.zmtp import framing as F
from geokernel.zmtp.sockets import RepSocket, RouterSocket, XPubSocket

# ---- sans-IO framing ------------------------------------------------------------------------


def _ready_frame(socket_type: str, identity=None) -> bytes:
    return F.build_ready(socket_type, identity)


def test_greeting_roundtrip():
    g = F.build_greeting()
    assert len(g) == 64 and g[0] == 0xFF and g[9] == 0x7F and g[10:12] == b"\x03\x00"
    assert g[12:16] == b"NULL" and g[32] == 0
    assert F.parse_greeting(g) == (3, 0, b"NULL", False)
    assert F.parse_greeting(F.build_greeting(minor=1, as_server=True)) == (3, 1, b"NULL", True)
    with pytest.raises(F.ProtocolError):
        F.parse_greeting(b"\xff" + b"\x00" * 8 + b"\x7f\x02\x00" + b"\x00" * 52)
    with pytest.raises(F.ProtocolError):
        F.parse_greeting(b"GET / HTTP/1.1\r\n".ljust(64, b" "))


def test_ready_build_and_parse():
    frame = _ready_frame("DEALER", b"abc")
    assert frame[0] == F.COMMAND and frame[1] == len(frame) - 2
    name, data = F.parse_command(frame[2:])
    assert name == b"READY"
    assert F.parse_properties(data) == {"socket-type": b"DEALER", "identity": b"abc"}
    assert F.parse_properties(F.encode_properties({"X": b"v" * 300})) == {"x": b"v" * 300}
    with pytest.raises(F.ProtocolError):
        F.parse_properties(b"\x04Name\x00\x00\x00\x09short")


def test_frame_encoding_short_long_more():
    parts = F.encode_message([b"a", b"", b"x" * 255, b"y" * 256], [])
    data = b"".join(parts)
    assert data[:3] == b"\x01\x01a" and data[3:5] == b"\x01\x00"
    assert data[5:7] == b"\x01\xff"
    long_hdr = data[7 + 255:7 + 255 + 9]
    assert long_hdr == struct.pack(">BQ", F.LONG, 256)  # last frame: LONG without MORE
    assert F.encode_command(b"PING", b"\x00\x00") == b"\x04\x07\x04PING\x00\x00"
    assert F.frame_header(70000, F.MORE) == struct.pack(">BQ", F.MORE | F.LONG, 70000)
    # non-byte buffers are sent as their raw bytes
    mv = memoryview(struct.pack("<3d", 1.0, 2.0, 3.0)).cast("d")
    data = b"".join(F.encode_message([mv], []))
    assert data[:2] == b"\x00\x18" and len(data) == 26


def _client_stream(messages, socket_type=b"DEALER", identity=b"me"):
    props = {"Socket-Type": socket_type, "Identity": identity}
    stream = F.build_greeting(minor=1) + F.encode_command(b"READY", F.encode_properties(props))
    stream += F.encode_command(b"PING", b"\x00\x0actx")
    for m in messages:
        stream += b"".join(F.encode_message(m, []))
    stream += F.encode_command(b"SUBSCRIBE", b"topic")
    return stream


MESSAGES = [[b"", b"hello"], [b"x" * 300, b"", b"y" * 70000], [b"single"], [b""]]


def _events_by_chunks(stream: bytes, chunks) -> tuple:
    conn = F.Connection("ROUTER", ("DEALER",))
    events = []
    for c in chunks:
        events.extend(conn.feed(c))
    return conn, events


def test_connection_handshake_and_messages():
    conn, events = _events_by_chunks(b"", [_client_stream(MESSAGES)])
    assert events[0] == (F.READY, {"socket-type": b"DEALER", "identity": b"me"})
    assert [e[1] for e in events[1:-1]] == MESSAGES
    assert events[-1] == (F.CMD, b"SUBSCRIBE", b"topic")
    out = conn.data_to_send()
    assert out.startswith(F.build_greeting())
    rest = F.Connection("DEALER", ("ROUTER",)).feed(out)  # our output parses as a peer would
    assert rest[0] == (F.READY, {"socket-type": b"ROUTER"})
    assert out.endswith(F.encode_command(b"PONG", b"ctx"))


def test_incremental_parsing_at_every_split_offset():
    stream = _client_stream([[b"", b"hello"], [b"x" * 300, b"z"], [b"q" * 10]])
    _, expected = _events_by_chunks(b"", [stream])
    for i in range(len(stream) + 1):
        _, events = _events_by_chunks(stream, [stream[:i], stream[i:]])
        assert events == expected, i
    for i in range(0, len(stream), 7):  # and three pieces
        j = min(len(stream), i + 5)
        _, events = _events_by_chunks(stream, [stream[:i], stream[i:j], stream[j:]])
        assert events == expected, i
    _, events = _events_by_chunks(stream, [stream[i:i + 1] for i in range(len(stream))])
    assert events == expected


def test_protocol_errors():
    conn = F.Connection("ROUTER", ("DEALER",))
    with pytest.raises(F.ProtocolError, match="cannot talk"):
        conn.feed(F.build_greeting() + _ready_frame("PUB"))
    conn = F.Connection("ROUTER", ("DEALER",))
    with pytest.raises(F.ProtocolError, match="mechanism"):
        conn.feed(F.build_greeting(mechanism=b"PLAIN"))
    assert b"ERROR" in conn.data_to_send()
    conn = F.Connection("ROUTER", ("DEALER",))
    with pytest.raises(F.ProtocolError, match="before the handshake"):
        conn.feed(F.build_greeting() + b"\x00\x01a")
    conn = F.Connection("ROUTER", ("DEALER",))
    with pytest.raises(F.ProtocolError, match="reserved"):
        conn.feed(F.build_greeting() + _ready_frame("DEALER") + b"\x80\x00")


# ---- interop with pyzmq ---------------------------------------------------------------------

CTX = zmq.Context.instance()


def _pump(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        gevent.sleep(0.001)


def _recv(sock, timeout=10.0):
    _pump(lambda: sock.poll(0), timeout)
    return sock.recv_multipart()


def _srecv(server, timeout=10.0):
    """recv on one of our sockets, letting the hub run until something arrives."""
    return gevent.with_timeout(timeout, server.recv)


def _client(kind, url, identity=None, opts=None):
    s = CTX.socket(kind)
    s.linger = 0
    if identity is not None:
        s.identity = identity
    for k, v in (opts or {}).items():
        s.setsockopt(k, v)
    s.connect(url)
    return s


@pytest.fixture()
def serve():
    """serve(SocketClass, url='tcp://127.0.0.1:0') -> (server, url clients connect to)."""
    made = []

    def _serve(cls, url="tcp://127.0.0.1:0", **kw):
        server = cls(**kw)
        server.bind(url)
        server.start()
        made.append(server)
        if url.startswith("tcp"):
            host, port = server.addresses[0][:2]
            url = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
        return server, url

    yield _serve
    for s in made:
        s.close(linger=False)


def test_dealer_router_both_ways_with_identities(serve):
    router, url = serve(RouterSocket)
    named = _client(zmq.DEALER, url, identity=b"alice")
    anon = _client(zmq.DEALER, url)
    named.send_multipart([b"hi", b"from alice"])
    assert _srecv(router) == [b"alice", b"hi", b"from alice"]
    anon.send(b"anon")
    anon_id, body = _srecv(router)
    assert body == b"anon" and len(anon_id) == 5 and anon_id[0] == 0
    assert router.send([b"alice", b"reply", b"two"])
    assert router.send([anon_id, b"to anon"])
    assert router.send([b"nobody", b"dropped"]) is None  # unroutable: dropped silently
    assert _recv(named) == [b"reply", b"two"]
    assert _recv(anon) == [b"to anon"]
    for s in (named, anon):
        s.close()


def test_router_handover_and_reconnect(serve):
    router, url = serve(RouterSocket)
    first = _client(zmq.DEALER, url, identity=b"sess")
    first.send(b"one")
    assert _srecv(router) == [b"sess", b"one"]
    second = _client(zmq.DEALER, url, identity=b"sess")  # same identity: takes it over
    second.send(b"two")
    assert _srecv(router) == [b"sess", b"two"]
    router.send([b"sess", b"to the newest"])
    assert _recv(second) == [b"to the newest"]
    second.close()
    first.close()
    _pump(lambda: not router.by_id)  # both connections gone
    again = _client(zmq.DEALER, url, identity=b"sess")
    again.send(b"back")
    assert _srecv(router) == [b"sess", b"back"]
    router.send([b"sess", b"welcome back"])
    assert _recv(again) == [b"welcome back"]
    again.close()


def test_sub_xpub_topics_and_subscription_events(serve):
    xpub, url = serve(XPubSocket)
    sub_a = _client(zmq.SUB, url, opts={zmq.SUBSCRIBE: b"a."})
    sub_all = _client(zmq.SUB, url, opts={zmq.SUBSCRIBE: b""})
    events = {_srecv(xpub), _srecv(xpub)}
    assert events == {b"\x01a.", b"\x01"}
    xpub.send([b"a.x", b"for a and all"])
    xpub.send([b"b.x", b"for all only"])
    assert _recv(sub_a) == [b"a.x", b"for a and all"]
    assert _recv(sub_all) == [b"a.x", b"for a and all"]
    assert _recv(sub_all) == [b"b.x", b"for all only"]
    gevent.sleep(0.05)
    assert not sub_a.poll(50)
    sub_a.setsockopt(zmq.UNSUBSCRIBE, b"a.")
    assert _srecv(xpub) == b"\x00a."
    sub_all.setsockopt(zmq.SUBSCRIBE, b"")  # verbose: a repeated subscription is reported too
    assert _srecv(xpub) == b"\x01"
    for s in (sub_a, sub_all):
        s.close()


def test_req_rep_echo_and_ipc(serve, tmp_path):
    rep, url = serve(RepSocket)
    req = _client(zmq.REQ, url)
    for i in range(3):
        req.send_multipart([b"ping", str(i).encode()])
        assert _recv(req) == [b"ping", str(i).encode()]
    req.close()
    path = str(tmp_path / "hb-1")
    rep_ipc, url = serve(RepSocket, f"ipc://{path}")
    req = _client(zmq.REQ, url)
    req.send(b"over ipc")
    assert _recv(req) == [b"over ipc"]
    req.close()
    rep_ipc.close(linger=False)
    assert not os.path.exists(path)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6(serve):
    try:
        rep, url = serve(RepSocket, "tcp://[::1]:0")
    except OSError:
        pytest.skip("::1 not available")
    req = _client(zmq.REQ, url, opts={zmq.IPV6: 1})
    req.send(b"v6")
    assert _recv(req) == [b"v6"]
    req.close()


def test_large_messages_both_directions(serve):
    router, url = serve(RouterSocket)
    dealer = _client(zmq.DEALER, url, identity=b"big")
    big = os.urandom(5 * 1024 * 1024)
    dealer.send_multipart([b"head", big, b"tail"])
    assert _srecv(router, 30) == [b"big", b"head", big, b"tail"]
    router.send([b"big", memoryview(big), b"x" * 255])
    assert _recv(dealer, 30) == [big, b"x" * 255]
    dealer.close()


def test_many_messages_in_order(serve):
    router, url = serve(RouterSocket)
    dealer = _client(zmq.DEALER, url, identity=b"fast", opts={zmq.RCVHWM: 0, zmq.SNDHWM: 0})
    dealer.send(b"hello")
    _srecv(router)
    n = 20000
    for i in range(n):
        router.send([b"fast", b"%d" % i])
    got = [_recv(dealer)[0] for _ in range(n)]
    assert got == [b"%d" % i for i in range(n)]
    for i in range(n):
        dealer.send(b"%d" % i)
    assert [_srecv(router)[1] for _ in range(n)] == [b"%d" % i for i in range(n)]
    dealer.close()


def test_high_water_mark_drops(serve):
    router, url = serve(RouterSocket, hwm=10)
    dealer = _client(zmq.DEALER, url, identity=b"slow")
    dealer.send(b"x")
    _srecv(router)
    # the first message is sent at once (nothing queued): one bigger than any socket buffer
    # leaves its rest queued, and the next ones queue behind it (no hub turn in between)
    big = b"m" * (8 << 20)  # 10 of them stay under the outbox byte bound (256 MiB)
    results = [router.send([b"slow", big]) for _ in range(15)]
    # the peer (libzmq's I/O thread) reads while we send: the first message may already have
    # left completely, then it no longer counts against the 10
    accepted = results.count(True)
    assert results == [True] * accepted + [False] * (15 - accepted) and accepted in (10, 11), results
    dealer.close()


def test_close_with_linger_flushes_queued_messages(serve):
    router, url = serve(RouterSocket)
    dealer = _client(zmq.DEALER, url, identity=b"last")
    dealer.send(b"x")
    _srecv(router)
    router.send([b"last", b"z" * 3_000_000])
    router.send([b"last", b"goodbye"])
    router.close(linger=True)  # like shutdown_reply followed by the kernel's exit
    router.join(10)
    assert len(_recv(dealer)[0]) == 3_000_000
    assert _recv(dealer) == [b"goodbye"]
    dealer.close()


def test_bind_address_in_use():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        s = RouterSocket()
        with pytest.raises(OSError) as e:
            s.bind(f"tcp://127.0.0.1:{busy.getsockname()[1]}")
        assert "in use" in e.value.strerror
    finally:
        busy.close()


# ---- the kernel with GEOKERNEL_TRANSPORT=zmtp -----------------------------------------------


def test_zmtp_transport_imports_no_zmq():
    code = ("import sys, geokernel.transport_zmtp, geokernel.cli, geokernel.assembly; "
            "assert not [m for m in sys.modules if m == 'zmq' or m.startswith('zmq.')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_zmtp_kernel_is_one_thread_without_zmq():
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="geokernel", ip="127.0.0.1")
    km.start_kernel(env={**os.environ, "GEOKERNEL_TRANSPORT": "zmtp"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive("import sys; assert 'zmq' not in sys.modules", timeout=30)
        assert reply["content"]["status"] == "ok"
        tasks = os.listdir(f"/proc/{km.provisioner.process.pid}/task")
        assert len(tasks) == 1, tasks
        assert kc.hb_channel.is_beating()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
