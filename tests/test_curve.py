"""CurveZMQ (RFC 26) on our ZMTP, against libzmq's CURVE (pyzmq clients) in this thread."""
from __future__ import annotations

import gevent
import pytest
import zmq

from geokernel.zmtp.curve import CurveServer, load_key, z85_decode, z85_encode
from geokernel.zmtp.sockets import RepSocket, RouterSocket, XPubSocket
from test_zmtp import CTX, _pump, _recv, _srecv, serve  # noqa: F401  (fixture)

PUB, SEC = zmq.curve_keypair()


def factory(cls):
    pub, sec = load_key(PUB), load_key(SEC)
    return lambda: CurveServer(pub, sec, cls.socket_type)


def curve_client(kind, url, serverkey=PUB, identity=None, opts=None):
    s = CTX.socket(kind)
    s.linger = 0
    cpub, csec = zmq.curve_keypair()
    s.curve_secretkey, s.curve_publickey, s.curve_serverkey = csec, cpub, serverkey
    if identity is not None:
        s.identity = identity
    for k, v in (opts or {}).items():
        s.setsockopt(k, v)
    s.connect(url)
    return s


def test_z85_round_trip():
    assert z85_encode(z85_decode(PUB)) == PUB
    assert z85_decode(b"HelloWorld") == bytes.fromhex("864fd26fb559f75b")  # RFC 32's example


def test_router_both_ways_and_big_frames(serve):
    router, url = serve(RouterSocket, mechanism_factory=factory(RouterSocket))
    d = curve_client(zmq.DEALER, url, identity=b"sec")
    d.send_multipart([b"hello", b"x" * 300_000])
    assert _srecv(router) == [b"sec", b"hello", b"x" * 300_000]
    for i in range(200):
        router.send([b"sec", b"%d" % i, b"y" * i])
    assert [_recv(d) for _ in range(200)] == [[b"%d" % i, b"y" * i] for i in range(200)]
    d.close()


def test_xpub_and_rep(serve):
    xpub, url = serve(XPubSocket, mechanism_factory=factory(XPubSocket))
    sub = curve_client(zmq.SUB, url, opts={zmq.SUBSCRIBE: b""})
    assert _srecv(xpub) == b"\x01"
    xpub.send([b"topic", b"data"])
    assert _recv(sub) == [b"topic", b"data"]
    rep, url2 = serve(RepSocket, mechanism_factory=factory(RepSocket))
    req = curve_client(zmq.REQ, url2)
    req.send(b"ping")
    assert _recv(req) == [b"ping"]
    sub.close()
    req.close()


@pytest.mark.parametrize("how", ["no keys", "wrong server key"])
def test_clients_without_the_keys_get_nothing(serve, how):
    router, url = serve(RouterSocket, mechanism_factory=factory(RouterSocket))
    if how == "no keys":
        s = CTX.socket(zmq.DEALER)
        s.linger = 0
        s.connect(url)
    else:
        s = curve_client(zmq.DEALER, url, serverkey=zmq.curve_keypair()[0])
    s.send(b"let me in")
    gevent.sleep(0.5)
    assert router._inbox.qsize() == 0 and not router.by_id
    assert router.send([b"", b"x"]) is None
    s.close()


def test_our_server_key_against_libzmq_server():
    """The other direction: libzmq's CURVE server and a libzmq client agree on the same
    connection-file keys we accept (so a key file works with either transport)."""
    srv = CTX.socket(zmq.ROUTER)
    srv.linger = 0
    srv.curve_secretkey, srv.curve_publickey, srv.curve_server = SEC, PUB, True
    port = srv.bind_to_random_port("tcp://127.0.0.1")
    c = curve_client(zmq.DEALER, f"tcp://127.0.0.1:{port}", identity=b"c")
    c.send(b"hi")
    assert srv.poll(5000) and srv.recv_multipart() == [b"c", b"hi"]
    c.close()
    srv.close()


def test_bad_handshakes_are_closed(serve):
    from geokernel.zmtp import framing as F
    from test_zmtp_limits import raw_peer, read_until_closed
    router, url = serve(RouterSocket, mechanism_factory=factory(RouterSocket))
    null = raw_peer(url)  # NULL greeting to a CURVE socket: ERROR, closed
    assert b"ERROR" in read_until_closed(null)
    for body in (b"\x01\x00" + bytes(192), b"short", b"\x01\x00" + bytes(300)):
        s = raw_peer(url, handshake=False)
        s.sendall(F.build_greeting(mechanism=b"CURVE") + F.encode_command(b"HELLO", body))
        read_until_closed(s)
        s.close()
    _pump(lambda: not router._all)
    null.close()
