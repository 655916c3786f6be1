"""A small RFC 6455 websocket client over gevent sockets (no threads, no monkey-patching).

Client frames are masked (the RFC requires it); pings from the server are answered by the
receiving greenlet; a message larger than `max_message` closes the connection (1009) instead
of growing memory without bound. No extensions (we never offer permessage-deflate).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import struct

import gevent
import gevent.event
import gevent.lock

from .errors import ClientError
from .remote_http import SocketReader, ServerURL, auth_headers, format_request, open_socket, read_head

log = logging.getLogger(__name__)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_MESSAGE = 256 * 2 ** 20  # default limit for one (reassembled) message


class WebSocketError(ClientError):
    """Handshake refused or protocol violation."""


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR as one big integer: ~100x faster than a Python byte loop for large messages
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    key = os.urandom(4)
    return bytes(head) + key + _mask(payload, key)


class WebSocket:
    """One client connection. recv() returns str (text), bytes (binary) or None once closed."""

    def __init__(self, sock, reader: SocketReader, subprotocol: str | None,
                 max_message: int = MAX_MESSAGE):
        self.sock, self.reader = sock, reader
        self.subprotocol = subprotocol
        self.max_message = max_message
        self.closed = False
        self.close_code: int | None = None
        self._send_lock = gevent.lock.Semaphore()
        self._pongs: dict[bytes, gevent.event.Event] = {}

    @classmethod
    def connect(cls, url: ServerURL, path: str, token: str | None = None,
                subprotocols: tuple = (), timeout: float = 30.0,
                max_message: int = MAX_MESSAGE) -> "WebSocket":
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        headers = auth_headers(url, token)
        headers.update({"Upgrade": "websocket", "Connection": "Upgrade",
                        "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"})
        if subprotocols:
            headers["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
        with gevent.Timeout(timeout, WebSocketError(f"websocket {path}: no handshake in {timeout}s")):
            sock = open_socket(url, timeout)
            try:
                sock.sendall(format_request("GET", path, headers))
                reader = SocketReader(sock)
                status, resp = read_head(reader)
                if status != 101:
                    body = reader.read_exact(min(int(resp.get("content-length", 0) or 0), 2000))
                    raise WebSocketError(f"websocket {url.url}{path[len(url.base):]}: HTTP {status} "
                                         f"{body[:200].decode('utf-8', 'replace')}".rstrip())
                want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
                if resp.get("sec-websocket-accept") != want:
                    raise WebSocketError("websocket handshake: bad Sec-WebSocket-Accept")
                chosen = resp.get("sec-websocket-protocol") or None
                if chosen is not None and chosen not in subprotocols:
                    raise WebSocketError(f"server chose a subprotocol we did not offer: {chosen!r}")
            except BaseException:
                sock.close()
                raise
        return cls(sock, reader, chosen, max_message)

    # -- sending -------------------------------------------------------------------------
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.closed:
            raise ConnectionError("websocket is closed")
        frame = encode_frame(opcode, payload)
        with self._send_lock:  # frames of two greenlets must not interleave
            self.sock.sendall(frame)

    def send(self, data) -> None:
        if isinstance(data, str):
            self._send_frame(OP_TEXT, data.encode("utf-8"))
        else:
            self._send_frame(OP_BINARY, bytes(data))

    def ping(self, timeout: float = 1.0) -> bool:
        """A ping/pong round trip with the server (needs a greenlet running recv())."""
        token = os.urandom(8)
        ev = self._pongs[token] = gevent.event.Event()
        try:
            self._send_frame(OP_PING, token)
            return ev.wait(timeout) and not self.closed
        except OSError:
            return False
        finally:
            self._pongs.pop(token, None)

    # -- receiving -----------------------------------------------------------------------
    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self.reader.read_exact(2)
        fin, opcode, n = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F
        if b0 & 0x70:
            raise WebSocketError("frame uses reserved bits (no extension was negotiated)")
        if n == 126:
            n = struct.unpack("!H", self.reader.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.reader.read_exact(8))[0]
        if n > self.max_message:
            self._fail(1009, f"frame of {n} bytes exceeds max_message={self.max_message}")
        key = self.reader.read_exact(4) if b1 & 0x80 else None  # servers should not mask
        payload = self.reader.read_exact(n)
        return fin, opcode, _mask(payload, key) if key else payload

    def _fail(self, code: int, why: str):
        log.warning("websocket: %s; closing", why)
        self.close(code)
        raise WebSocketError(why)

    def recv(self):
        """The next data message; None when the connection is closed (by either side)."""
        parts, first_op, size = [], None, 0
        while not self.closed:
            try:
                fin, op, payload = self._read_frame()
            except (OSError, ConnectionError) as e:
                if not self.closed:
                    log.info("websocket connection lost: %s", e)
                self._drop()
                return None
            if op == OP_PING:
                try:
                    self._send_frame(OP_PONG, payload)
                except OSError:
                    pass
            elif op == OP_PONG:
                ev = self._pongs.get(payload)
                if ev is not None:
                    ev.set()
            elif op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close(1000)
                return None
            elif op in (OP_TEXT, OP_BINARY, OP_CONT):
                if (op == OP_CONT) != (first_op is not None):
                    self._fail(1002, "unexpected continuation frame" if op == OP_CONT
                               else "new message inside a fragmented one")
                first_op = first_op if op == OP_CONT else op
                size += len(payload)
                if size > self.max_message:
                    self._fail(1009, f"message exceeds max_message={self.max_message}")
                parts.append(payload)
                if fin:
                    data = b"".join(parts)
                    if first_op == OP_TEXT:
                        return data.decode("utf-8", "replace")
                    return data
            else:
                self._fail(1002, f"unknown opcode {op}")
        return None

    # -- closing -------------------------------------------------------------------------
    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        try:
            self._send_frame(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        self._drop()

    def _drop(self) -> None:
        self.closed = True
        for ev in self._pongs.values():
            ev.set()
        try:
            self.sock.close()
        except OSError:
            pass
