"""CurveZMQ (RFC 26) server side for our ZMTP, with PyNaCl (libsodium's crypto_box).

A `CurveServer` is one connection's mechanism, plugged into framing.Connection: it answers the
client's HELLO with WELCOME and its INITIATE with READY, then seals and opens every frame as a
MESSAGE command. Sans-IO like framing (no sockets, no gevent, no zmq).

Keys are the kernel's long-term keypair from the connection file (Z85 text, as jupyter_client
writes `curve_publickey`/`curve_secretkey`). As on ipykernel and libzmq without a ZAP handler,
any client key is accepted: what a client must know is the server's public key, which only the
connection file holds, so a client without the keys gets nothing (not even a greeting reply
past the handshake). Wire layout (lengths in bytes), all boxes are crypto_box (MAC + data):

  HELLO     version 1.0 (2), padding (72), C' (32), short nonce (8), box[64 zeros](C'->S) (80)
  WELCOME   long nonce (16), box[S' (32) + cookie (96)](S->C') (144)
  INITIATE  cookie (96), short nonce (8), box[C (32) + vouch (96) + metadata](C'->S')
            vouch = long nonce (16) + box[C' + S](C->S') (80)
  READY     short nonce (8), box[metadata](S'->C')
  MESSAGE   short nonce (8), box[flags (1) + frame](S'->C'); flags: 1 MORE, 2 COMMAND
            (each sent as a data frame, as libzmq does; its MORE flag repeated outside the box)
"""
from __future__ import annotations

import os
import struct

from nacl import bindings as _nacl
from nacl.exceptions import CryptoError

from .framing import COMMAND, MORE, ProtocolError, encode_properties, frame_header, parse_properties

NAME = b"CURVE"
_Q = struct.Struct(">Q")
_MESSAGE = b"\x07MESSAGE"
_CLIENT_MSG = b"CurveZMQMESSAGEC"
_SERVER_MSG = b"CurveZMQMESSAGES"

# ---- Z85 (ZeroMQ RFC 32): the text form of keys in connection files -------------------------
_Z85 = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}


def z85_decode(text) -> bytes:
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    if len(data) % 5:
        raise ValueError("Z85 text length must be a multiple of 5")
    out = bytearray()
    for i in range(0, len(data), 5):
        n = 0
        for c in data[i:i + 5]:
            if c not in _Z85_INDEX:
                raise ValueError(f"invalid Z85 character {chr(c)!r}")
            n = n * 85 + _Z85_INDEX[c]
        if n >= 1 << 32:
            raise ValueError("invalid Z85 group")
        out += n.to_bytes(4, "big")
    return bytes(out)


def z85_encode(data: bytes) -> bytes:
    if len(data) % 4:
        raise ValueError("Z85 data length must be a multiple of 4")
    out = bytearray()
    for i in range(0, len(data), 4):
        n = int.from_bytes(data[i:i + 4], "big")
        group = bytearray(5)
        for j in range(4, -1, -1):
            n, group[j] = divmod(n, 85)
        out += bytes(_Z85[g] for g in group)
    return bytes(out)


def load_key(key) -> bytes:
    """A 32-byte key from its Z85 text (40 characters) or raw bytes."""
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return bytes(key)
    raw = z85_decode(key)
    if len(raw) != 32:
        raise ValueError("a CURVE key is 32 bytes (40 Z85 characters)")
    return raw


def keypair() -> tuple:
    """(public, secret), 32 raw bytes each."""
    return _nacl.crypto_box_keypair()


class CurveServer:
    """The CURVE mechanism of one server connection (see framing.Connection's `mechanism`)."""

    name = NAME

    def __init__(self, public_key: bytes, secret_key: bytes, socket_type: str):
        self.public = public_key  # S
        self.secret = secret_key  # s
        self.socket_type = socket_type
        self._cookie_key = os.urandom(32)
        self._client_transient = None  # C'
        self._transient_public, self._transient_secret = keypair()  # S', s'
        self._key = None  # crypto_box_beforenm(C', s'): the session key
        self._send_nonce = 0
        self._recv_nonce = 0
        self.client_key = None  # C, the client's long-term public key (after INITIATE)

    # ---- handshake ------------------------------------------------------------------------
    def handshake(self, name: bytes, data: bytes, conn) -> dict | None:
        """One handshake command; returns the client's metadata once READY has been queued."""
        try:
            if name == b"HELLO" and self._client_transient is None:
                conn._out.append(self._welcome(data))
                return None
            if name == b"INITIATE" and self._client_transient is not None and self._key is None:
                props, ready = self._initiate(data)
                conn._out.append(ready)
                return props
        except CryptoError:
            raise ProtocolError(f"CURVE {name.decode('ascii', 'replace')} does not decrypt "
                                "(wrong server key?)") from None
        raise ProtocolError(f"unexpected {name!r} in the CURVE handshake")

    def _welcome(self, data: bytes) -> bytes:
        if len(data) != 194 or data[:2] != b"\x01\x00":
            raise ProtocolError("malformed CURVE HELLO")
        client_transient, nonce, box = data[74:106], data[106:114], data[114:194]
        plain = _nacl.crypto_box_open_easy(box, b"CurveZMQHELLO---" + nonce, client_transient, self.secret)
        if plain != bytes(64):
            raise ProtocolError("malformed CURVE HELLO signature")
        self._client_transient = client_transient
        cookie_nonce = os.urandom(16)
        cookie = cookie_nonce + _nacl.crypto_secretbox(
            client_transient + self._transient_secret, b"COOKIE--" + cookie_nonce, self._cookie_key)
        welcome_nonce = os.urandom(16)
        box = _nacl.crypto_box_easy(self._transient_public + cookie, b"WELCOME-" + welcome_nonce,
                                    client_transient, self.secret)
        return _command(b"WELCOME", welcome_nonce + box)

    def _initiate(self, data: bytes) -> tuple:
        if len(data) < 96 + 8 + 16 + 128:
            raise ProtocolError("malformed CURVE INITIATE")
        cookie, nonce, box = data[:96], data[96:104], data[104:]
        inside = _nacl.crypto_secretbox_open(cookie[16:], b"COOKIE--" + cookie[:16], self._cookie_key)
        if inside != self._client_transient + self._transient_secret:
            raise ProtocolError("CURVE INITIATE with a foreign cookie")
        self._check_nonce(nonce)
        plain = _nacl.crypto_box_open_easy(box, b"CurveZMQINITIATE" + nonce, self._client_transient,
                                           self._transient_secret)
        client_key, vouch, metadata = plain[:32], plain[32:128], plain[128:]
        vouched = _nacl.crypto_box_open_easy(vouch[16:], b"VOUCH---" + vouch[:16], client_key,
                                             self._transient_secret)
        if vouched != self._client_transient + self.public:
            raise ProtocolError("CURVE vouch does not match")
        self.client_key = client_key
        self._key = _nacl.crypto_box_beforenm(self._client_transient, self._transient_secret)
        props = parse_properties(metadata)
        ours = encode_properties({"Socket-Type": self.socket_type.encode("ascii")})
        nonce = self._next_nonce()
        ready = _nacl.crypto_box_easy_afternm(ours, b"CurveZMQREADY---" + nonce, self._key)
        return props, _command(b"READY", nonce + ready)

    # ---- traffic --------------------------------------------------------------------------
    def _next_nonce(self) -> bytes:
        self._send_nonce += 1
        return _Q.pack(self._send_nonce)

    def _check_nonce(self, nonce: bytes) -> None:
        (n,) = _Q.unpack(nonce)
        if n <= self._recv_nonce:  # replayed or reordered: RFC 26 requires increasing nonces
            raise ProtocolError("CURVE nonce did not increase")
        self._recv_nonce = n

    def decrypt(self, flags: int, body: bytes) -> tuple:
        """A received MESSAGE command -> (framing flags, frame body)."""
        if body[:8] != _MESSAGE or len(body) < 8 + 8 + 17:
            raise ProtocolError("expected a CURVE MESSAGE")
        nonce = body[8:16]
        self._check_nonce(nonce)
        try:
            plain = _nacl.crypto_box_open_easy_afternm(body[16:], _CLIENT_MSG + nonce, self._key)
        except CryptoError:
            raise ProtocolError("CURVE MESSAGE does not decrypt") from None
        f = plain[0]
        return (MORE if f & 1 else 0) | (COMMAND if f & 2 else 0), plain[1:]

    def encrypt_frame(self, payload, flags: int) -> list:
        """[header, body] of one MESSAGE command carrying `payload` (framing flags MORE/COMMAND)."""
        nonce = self._next_nonce()
        plain = bytes(((1 if flags & MORE else 0) | (2 if flags & COMMAND else 0),)) + bytes(payload)
        body = _MESSAGE + nonce + _nacl.crypto_box_easy_afternm(plain, _SERVER_MSG + nonce, self._key)
        # libzmq sends MESSAGE boxes as ZMTP data frames, MORE repeated outside the box
        return [frame_header(len(body), MORE if flags & MORE else 0), body]

    def encrypt_message(self, frames) -> list:
        last = len(frames) - 1
        parts: list = []
        for i, frame in enumerate(frames):
            if isinstance(frame, str):
                frame = frame.encode("utf-8")
            parts.extend(self.encrypt_frame(frame, MORE if i < last else 0))
        return parts


def _command(name: bytes, data: bytes) -> bytes:
    body = bytes((len(name),)) + name + data
    return frame_header(len(body), COMMAND) + body
