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


# Defaults of the limits (constructor parameters of Connection). libzmq's ZMQ_MAXMSGSIZE is
# unlimited; we bound a frame and a message at 1 GiB so that a header that declares 2^62 bytes
# closes the connection before any of its body is buffered, while any real Jupyter message
# (even one with big comm buffers) still fits.
MAX_FRAME_SIZE = 1 << 30
MAX_MESSAGE_SIZE = 1 << 30
MAX_PONG_CONTEXT = 16  # RFC 37: a PING's context is at most 16 bytes; we echo no more
MAX_MESSAGE_FRAMES = 100_000  # frames in one multipart message (each costs ~60 bytes of list)


class ProtocolError(Exception):
    """The peer broke the protocol (or rejected us); the connection must be closed."""


def encode_error(reason: str) -> bytes:
    """An ERROR command (RFC 23/37): reason length (1 byte) + reason, at most 255 bytes."""
    r = reason.encode("utf-8", "replace")[:255]
    return encode_command(b"ERROR", bytes((len(r),)) + r)


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

    `peer_types` are the socket types we accept (compatibility table of RFC 23).
    `max_frame_size` / `max_message_size`: a frame (or the sum of a multipart message's frames)
    declared bigger than this raises ProtocolError at its header, before its body is buffered.
    `max_frames`: frames in one multipart message. `mechanism`: None for NULL, or an object with
    the interface of curve.CurveServer (the handshake and per-frame crypto)."""

    def __init__(self, socket_type: str, peer_types=(), identity: bytes | None = None,
                 max_frame_size: int = MAX_FRAME_SIZE, max_message_size: int = MAX_MESSAGE_SIZE,
                 max_frames: int = MAX_MESSAGE_FRAMES, mechanism=None):
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self.max_frames = max_frames
        self.mechanism = mechanism
        self._msg_size = 0  # bytes of the multipart message being assembled
        self.socket_type = socket_type
        self.peer_types = {t.encode("ascii") for t in peer_types}
        self.identity = identity
        self.state = "greeting"  # -> "handshake" -> "open"
        self.peer_version = (0, 0)
        self.peer_props: dict = {}
        self._buf = bytearray()  # unparsed bytes (only when a frame is split across reads)
        self._frames: list = []  # frames of the multipart message being assembled
        name = mechanism.name if mechanism is not None else b"NULL"
        # the whole greeting at once: peers are 3.x
        self._out: list = [build_greeting(mechanism=name, as_server=mechanism is not None)]
        self.pending = 0  # bytes still missing for the frame being received (a read-size hint)

    def close(self) -> None:
        """Release the buffers (a half-received frame can be up to max_frame_size)."""
        self._buf = bytearray()
        self._frames = []
        self._out = []
        self.state = "closed"

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
            if size > self.max_frame_size or self._msg_size + size > self.max_message_size:
                self._out.append(encode_error("message too large"))
                raise ProtocolError(f"frame of {size} bytes exceeds the limit "
                                    f"({self.max_frame_size} per frame, {self.max_message_size} per message)")
            stop = start + size
            if stop > end:
                self.pending = stop - end
                return pos
            if flags & 0xF8:
                raise ProtocolError(f"reserved frame flags set: {flags:#x}")
            body = bytes(mv[start:stop])
            pos = stop
            if self.mechanism is not None and self.state == "open":
                flags, body = self.mechanism.decrypt(flags, body)  # MESSAGE command -> frame
            if flags & COMMAND:
                self._on_command(body, events)
            elif self.state != "open":
                raise ProtocolError("message frame before the handshake finished")
            elif flags & MORE:
                frames.append(body)
                self._msg_size += size
                if len(frames) >= self.max_frames:
                    self._out.append(encode_error("too many frames"))
                    raise ProtocolError(f"message of more than {self.max_frames} frames")
            else:
                frames.append(body)
                events.append((MESSAGE, frames))
                self._frames = frames = []
                self._msg_size = 0

    def _on_greeting(self, data) -> None:
        major, minor, mechanism, _ = parse_greeting(data)
        ours = self.mechanism.name if self.mechanism is not None else b"NULL"
        if mechanism != ours:
            self._out.append(encode_error(f"only the {ours.decode()} mechanism is supported"))
            raise ProtocolError(f"unsupported mechanism {mechanism!r} (need {ours.decode()})")
        self.peer_version = (major, minor)
        self.state = "handshake"
        if self.mechanism is None:
            self._out.append(build_ready(self.socket_type, self.identity))

    def _check_peer_type(self, props: dict) -> None:
        peer_type = props.get("socket-type", b"")
        if self.peer_types and peer_type not in self.peer_types:
            self._out.append(encode_error("invalid socket type"))
            raise ProtocolError(f"{peer_type.decode('ascii', 'replace')} peer cannot talk to "
                                f"{self.socket_type}")

    def _on_command(self, body: bytes, events: list) -> None:
        name, data = parse_command(body)
        if name == b"ERROR":  # RFC 23/37: fatal in the handshake and after it
            reason = data[1:1 + data[0]] if data else b""
            raise ProtocolError(f"peer sent ERROR: {reason.decode('utf-8', 'replace')}")
        if self.state == "handshake":
            if self.mechanism is not None:
                props = self.mechanism.handshake(name, data, self)
                if props is None:
                    return
            else:
                if name != b"READY":
                    raise ProtocolError(f"expected READY, got {name!r}")
                props = parse_properties(data)
            self._check_peer_type(props)
            self.peer_props = props
            self.state = "open"
            events.append((READY, props))
        elif name == b"PING":  # ZMTP 3.1 heartbeat: answer with the peer's context (capped)
            self.send_command(b"PONG", data[2:2 + MAX_PONG_CONTEXT])
        elif name != b"PONG":
            events.append((CMD, name, data))

    def send_command(self, name: bytes, data: bytes = b"") -> None:
        """Queue a command after the handshake (encrypted when a mechanism says so)."""
        if self.mechanism is not None and self.state == "open":
            body = bytes((len(name),)) + name + data
            self._out.extend(self.mechanism.encrypt_frame(body, COMMAND))
        else:
            self._out.append(encode_command(name, data))
