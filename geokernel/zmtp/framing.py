"""Sans-IO ZMTP 3.x (RFC 23 ZMTP 3.0, RFC 37 ZMTP 3.1) with the NULL mechanism.

Bytes in, events out; bytes to send are collected for the caller. No sockets, no gevent.

Greeting (64 bytes): 0xFF, 8 padding bytes, 0x7F, major, minor, mechanism (20 bytes, NUL
padded), as-server (1 byte), 31 filler bytes. Frame: flags (bit0 MORE, bit1 LONG, bit2
COMMAND), size (1 byte, or 8 bytes big-endian when LONG), body. Command body: name length
(1 byte), name, data. READY data: properties = name length (1 byte), name, value length
(4 bytes big-endian), value.
"""
from __future__ import annotations

import struct

GREETING_SIZE = 64
MORE, LONG, COMMAND = 1, 2, 4

# events returned by Connection.feed (plain tuples: cheap to build and to dispatch)
READY = "ready"      # ("ready", {lower-case property name: bytes})
MESSAGE = "message"  # ("message", [frame bytes, ...])
CMD = "command"      # ("command", name bytes, data bytes), e.g. SUBSCRIBE/CANCEL in 3.1

_SHORT = [bytes((0, n)) for n in range(256)]
_SHORT_MORE = [bytes((MORE, n)) for n in range(256)]
_LONG_HDR = struct.Struct(">BQ")
_U32 = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer broke the protocol (or rejected us); the connection must be closed."""


def build_greeting(minor: int = 0, mechanism: bytes = b"NULL", as_server: bool = False) -> bytes:
    return (b"\xff" + b"\x00" * 8 + b"\x7f" + bytes((3, minor)) + mechanism.ljust(20, b"\x00")
            + bytes((int(as_server),)) + b"\x00" * 31)


def parse_greeting(data) -> tuple:
    """(major, minor, mechanism, as_server) of a 64-byte greeting; ProtocolError if not ZMTP 3."""
    data = bytes(data[:GREETING_SIZE])
    if len(data) < GREETING_SIZE or data[0] != 0xFF or not data[9] & 1:
        raise ProtocolError("not a ZMTP 3 greeting")
    major, minor = data[10], data[11]
    if major < 3:
        raise ProtocolError(f"ZMTP {major}.{minor} is not supported (need 3.x)")
    return major, minor, data[12:32].rstrip(b"\x00"), bool(data[32])


def frame_header(size: int, flags: int = 0) -> bytes:
    if size < 256:
        return bytes((flags, size))
    return _LONG_HDR.pack(flags | LONG, size)


def encode_command(name: bytes, data: bytes = b"") -> bytes:
    body = bytes((len(name),)) + name + data
    return frame_header(len(body), COMMAND) + body


def encode_properties(props: dict) -> bytes:
    out = []
    for name, value in props.items():
        n = name.encode("ascii")
        out.append(bytes((len(n),)) + n + _U32.pack(len(value)) + value)
    return b"".join(out)


def parse_properties(data) -> dict:
    """Property names are case-insensitive: keys come back lower-case."""
    props, pos, data = {}, 0, bytes(data)
    while pos < len(data):
        n = data[pos]
        name = data[pos + 1:pos + 1 + n]
        pos += 1 + n
        if pos + 4 > len(data):
            raise ProtocolError("truncated property")
        (size,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + size > len(data):
            raise ProtocolError("truncated property value")
        props[name.decode("ascii", "replace").lower()] = data[pos:pos + size]
        pos += size
    return props


def build_ready(socket_type: str, identity: bytes | None = None) -> bytes:
    props = {"Socket-Type": socket_type.encode("ascii")}
    if identity is not None:
        props["Identity"] = identity
    return encode_command(b"READY", encode_properties(props))


def parse_command(body) -> tuple:
    body = bytes(body)
    if not body or 1 + body[0] > len(body):
        raise ProtocolError("malformed command")
    return body[1:1 + body[0]], body[1 + body[0]:]


def _as_buffer(frame):
    """bytes stay as they are; other buffers become flat byte views (len() == nbytes)."""
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, str):
        return frame.encode("utf-8")
    mv = memoryview(frame)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())
    return mv


def encode_message(frames, out: list) -> list:
    """Append header/body pairs of one multipart message to `out` (joined once by the writer)."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        frame = _as_buffer(frame)
        n = len(frame)
        if n < 256:
            out.append((_SHORT_MORE if i < last else _SHORT)[n])
        else:
            out.append(_LONG_HDR.pack(LONG | MORE if i < last else LONG, n))
        out.append(frame)
    return out


class Connection:
    """One ZMTP connection seen from our side: greeting, NULL handshake, then frames.

    `peer_types` are the socket types we accept (compatibility table of RFC 23)."""

    def __init__(self, socket_type: str, peer_types=(), identity: bytes | None = None):
        self.socket_type = socket_type
        self.peer_types = {t.encode("ascii") for t in peer_types}
        self.identity = identity
        self.state = "greeting"  # -> "handshake" -> "open"
        self.peer_version = (0, 0)
        self.peer_props: dict = {}
        self._buf = bytearray()  # unparsed bytes (only when a frame is split across reads)
        self._frames: list = []  # frames of the multipart message being assembled
        self._out: list = [build_greeting()]  # the whole greeting at once: peers are 3.x
        self.pending = 0  # bytes still missing for the frame being received (a read-size hint)

    def data_to_send(self) -> bytes:
        out, self._out = self._out, []
        return b"".join(out)

    def feed(self, data) -> list:
        """Consume received bytes; return complete events (see READY, MESSAGE, CMD)."""
        if self._buf:
            self._buf += data
            data = self._buf
        events: list = []
        end = len(data)
        with memoryview(data) as mv:
            pos = self._parse(mv, end, events)
        if data is self._buf:
            del self._buf[:pos]  # cheap: bytearray drops a prefix without moving the rest
        elif pos < end:
            self._buf = bytearray(memoryview(data)[pos:])
        return events

    def _parse(self, mv, end: int, events: list) -> int:
        pos = 0
        if self.state == "greeting":
            if end < GREETING_SIZE:
                self.pending = GREETING_SIZE - end
                return 0
            self._on_greeting(mv[:GREETING_SIZE])
            pos = GREETING_SIZE
        frames = self._frames
        while True:
            if end - pos < 2:
                self.pending = 2
                return pos
            flags = mv[pos]
            if flags & LONG:
                if end - pos < 9:
                    self.pending = 9
                    return pos
                (size,) = struct.unpack_from(">Q", mv, pos + 1)
                start = pos + 9
            else:
                size = mv[pos + 1]
                start = pos + 2
            stop = start + size
            if stop > end:
                self.pending = stop - end
                return pos
            if flags & 0xF8:
                raise ProtocolError(f"reserved frame flags set: {flags:#x}")
            body = bytes(mv[start:stop])
            pos = stop
            if flags & COMMAND:
                self._on_command(body, events)
            elif self.state != "open":
                raise ProtocolError("message frame before the handshake finished")
            elif flags & MORE:
                frames.append(body)
            else:
                frames.append(body)
                events.append((MESSAGE, frames))
                self._frames = frames = []

    def _on_greeting(self, data) -> None:
        major, minor, mechanism, _ = parse_greeting(data)
        if mechanism != b"NULL":
            reason = b"only the NULL mechanism is supported"
            self._out.append(encode_command(b"ERROR", bytes((len(reason),)) + reason))
            raise ProtocolError(f"unsupported mechanism {mechanism!r}")
        self.peer_version = (major, minor)
        self.state = "handshake"
        self._out.append(build_ready(self.socket_type, self.identity))

    def _on_command(self, body: bytes, events: list) -> None:
        name, data = parse_command(body)
        if self.state == "handshake":
            if name == b"ERROR":
                reason = data[1:1 + data[0]] if data else b""
                raise ProtocolError(f"peer rejected the handshake: {reason.decode('utf-8', 'replace')}")
            if name != b"READY":
                raise ProtocolError(f"expected READY, got {name!r}")
            props = parse_properties(data)
            peer_type = props.get("socket-type", b"")
            if self.peer_types and peer_type not in self.peer_types:
                raise ProtocolError(f"{peer_type.decode('ascii', 'replace')} peer cannot talk to "
                                    f"{self.socket_type}")
            self.peer_props = props
            self.state = "open"
            events.append((READY, props))
        elif name == b"PING":  # ZMTP 3.1 heartbeat: answer with the peer's context
            self._out.append(encode_command(b"PONG", data[2:]))
        elif name != b"PONG":
            events.append((CMD, name, data))
