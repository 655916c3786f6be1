"""Hostile peers on every port of a real kernel process (raw TCP on 127.0.0.1): garbage,
truncated greetings, wrong socket types, huge frame headers, half frames, floods, idle
connections. The kernel must end with every channel working. Both transports."""
from __future__ import annotations

import os
import socket
import struct
import time

from geokernel.zmtp import framing as F
from test_hostile import any_kernel, assert_all_channels_work  # noqa: F401  (fixture)

CHANNELS = ("shell", "control", "stdin", "iopub", "hb")
PEER_TYPE = {"shell": "DEALER", "control": "DEALER", "stdin": "DEALER", "iopub": "SUB", "hb": "REQ"}


def connect(km, channel: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", getattr(km, channel + "_port")), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
    return s


def handshaken(km, channel: str, socket_type: str | None = None) -> socket.socket:
    s = connect(km, channel)
    s.sendall(F.build_greeting(minor=1) + F.build_ready(socket_type or PEER_TYPE[channel], b"h"))
    return s


def send_quietly(s: socket.socket, data: bytes) -> None:
    try:
        s.sendall(data)
    except OSError:  # the kernel closed on us: that is the point
        pass


def test_hostile_peers_on_every_port(any_kernel):
    km, kc = any_kernel
    kept = []
    try:
        for ch in CHANNELS:
            g = connect(km, ch)  # garbage instead of a greeting
            send_quietly(g, os.urandom(65536))
            t = connect(km, ch)  # truncated greeting, then silence
            send_quietly(t, F.build_greeting()[:30])
            w = handshaken(km, ch, "PUB")  # a socket type that may not talk to this one
            h = handshaken(km, ch)  # a frame header declaring 2 GiB
            send_quietly(h, struct.pack(">BQ", F.LONG, 2 << 30) + b"x" * 65536)
            half = handshaken(km, ch)  # half a 10 MB frame, then silence
            send_quietly(half, struct.pack(">BQ", F.LONG, 10 << 20) + b"y" * (1 << 20))
            bad = handshaken(km, ch)  # reserved flags
            send_quietly(bad, b"\xf0\x00")
            idle = [connect(km, ch) for _ in range(20)]  # connections that never speak
            kept += [g, t, w, h, half, bad] + idle

        flood = handshaken(km, "shell")  # unsigned garbage messages
        unsigned = b"".join(F.encode_message([b"<IDS|MSG>", b"", b"{}", b"{}", b"{}", b"{}"], []))
        send_quietly(flood, unsigned * 5000)
        subs = handshaken(km, "iopub")  # a subscription flood
        send_quietly(subs, b"".join(F.encode_command(b"SUBSCRIBE", b"topic-%016d" % i)
                                    for i in range(20000)))
        pings = handshaken(km, "hb")  # heartbeat requests it never reads the answers of
        send_quietly(pings, b"".join(F.encode_message([b"", b"ping"], [])) * 20000)
        kept += [flood, subs, pings]
        time.sleep(1.0)
        assert km.is_alive()
        assert_all_channels_work(km, kc)  # with all of them still connected
    finally:
        for s in kept:
            s.close()
    time.sleep(0.5)
    assert_all_channels_work(km, kc)  # and after they are gone
