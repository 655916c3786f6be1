"""Property-based fuzzing (hypothesis) of the sans-IO framing layer and the wire codec: any
bytes, cut anywhere, give events or ProtocolError, never another exception or unbounded
buffering; any frames give a Message or WireError."""
from __future__ import annotations

import hashlib
import hmac
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geokernel.wire import Codec, Signer, WireError
from geokernel.zmtp import framing as F

PREFIX = F.build_greeting(minor=1) + F.build_ready("DEALER", b"fuzz")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_all(data: bytes, cuts: list, max_frame: int = 1 << 16) -> list:
    conn = F.Connection("ROUTER", ("DEALER",), max_frame_size=max_frame, max_message_size=max_frame * 4,
                        max_frames=64)
    events, pos = [], 0
    try:
        for c in sorted(set(cuts)) + [len(data)]:
            if c < pos:
                continue
            events.extend(conn.feed(data[pos:c]))
            pos = c
            # never buffers more than one frame (plus a header) beyond what it parsed
            assert len(conn._buf) <= max_frame + 9
    except F.ProtocolError:
        events.append("error")
    return events


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_random_bytes_after_a_valid_handshake(data, cuts):
    events = feed_all(PREFIX + data, [len(PREFIX)] + [c + len(PREFIX) for c in cuts])
    assert events[0][0] == F.READY


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_random_bytes_from_the_start(data, cuts):
    feed_all(data, cuts)


@st.composite
def streams(draw):
    """A valid client stream: messages and commands, and where it may be cut."""
    items, out = [], [PREFIX]
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            frames = draw(st.lists(st.binary(max_size=600), min_size=1, max_size=5))
            out.append(b"".join(F.encode_message(frames, [])))
            items.append(("message", frames))
        else:
            name = draw(st.sampled_from([b"SUBSCRIBE", b"CANCEL", b"PING", b"PONG", b"XYZ"]))
            data = draw(st.binary(max_size=300))
            if name == b"PING":
                data = b"\x00\x01" + data[:16]
            out.append(F.encode_command(name, data))
            if name not in (b"PING", b"PONG"):
                items.append(("command", name, data))
    stream = b"".join(out)
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=10))
    return stream, cuts, items


@FUZZ
@given(streams())
def test_valid_streams_parse_the_same_however_they_are_cut(sample):
    stream, cuts, items = sample
    events = feed_all(stream, cuts)
    got = [("message", e[1]) if e[0] == F.MESSAGE else e for e in events[1:]]
    assert got == items


@FUZZ
@given(st.lists(st.one_of(st.integers(0, 70_000), st.integers(0, 2 ** 64 - 1)), min_size=1, max_size=4))
def test_declared_sizes_over_the_limit_fail_at_the_header(sizes):
    limit = 1 << 16
    data = PREFIX
    for n in sizes:  # frames with their bodies, up to the first one over the limit: header only
        data += F.frame_header(n) if n < 256 else b"\x02" + n.to_bytes(8, "big")
        if n > limit:
            break
        data += b"x" * n
    events = feed_all(data, [len(PREFIX)])
    assert (events[-1] == "error") == any(n > limit for n in sizes)


# ---- the codec ------------------------------------------------------------------------------

KEY = b"fuzz-key"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


def sign(parts):
    h = hmac.new(KEY, digestmod=hashlib.sha256)
    for p in parts:
        h.update(p)
    return h.hexdigest().encode()


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_random_frames_decode_or_are_rejected(frames):
    codec = Codec(Signer(KEY))
    try:
        codec.deserialize(frames)
    except WireError:
        pass
    unsigned = Codec(Signer(b""))
    try:
        unsigned.deserialize([b"<IDS|MSG>"] + frames)
    except WireError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=4, max_size=4), st.lists(st.binary(max_size=50), max_size=3))
def test_signed_garbage_is_rejected_cleanly(parts, buffers):
    codec = Codec(Signer(KEY))
    try:
        msg = codec.deserialize([b"id", b"<IDS|MSG>", sign(parts)] + parts + buffers)
    except WireError:
        return
    assert msg.identities == [b"id"]


@FUZZ
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), json_values,
       st.integers(0, 3000))
def test_signed_json_round_trips_or_is_rejected(content, extra, depth):
    codec = Codec(Signer(KEY))
    header = {"msg_id": "m", "msg_type": "execute_request", "x": extra}
    deep = "[" * depth + "]" * depth
    parts = [json.dumps(header).encode(), ("{\"p\": %s}" % deep).encode(), b"{}",
             json.dumps(content).encode()]
    try:
        msg = codec.deserialize([b"<IDS|MSG>", sign(parts)] + parts)
    except WireError:
        return
    assert msg.content == content and msg.header == header
