"""Sans-IO Jupyter wire codec: frames <-> Message.

Frames are `[identities..., b"<IDS|MSG>", signature, header, parent, metadata, content,
buffers...]`. The signature is an HMAC over the four JSON frames; it is checked with a
constant-time compare *before* any JSON is parsed, and a signature seen before is rejected
(replay). Imports neither zmq nor gevent.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from base64 import b64encode
from collections import OrderedDict
from datetime import date, datetime, timezone
from math import isfinite

from .message import Message

DELIM = b"<IDS|MSG>"


class WireError(ValueError):
    """A message that must be dropped: malformed, badly signed or replayed."""


def _json_default(obj):
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=timezone.utc)
        return obj.isoformat().replace("+00:00", "Z")
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return b64encode(bytes(obj)).decode("ascii")
    # numpy scalars and friends
    for cast in (int, float):
        try:
            if cast(obj) == obj:
                return cast(obj)
        except (TypeError, ValueError):
            pass
    if isinstance(obj, (set, frozenset, tuple)) or hasattr(obj, "__iter__"):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(default=_json_default, ensure_ascii=False, check_circular=False,
                            allow_nan=False, separators=(",", ":"))


def _finite(obj):
    """NaN and infinities as their repr ("nan", "inf"), as jupyter_client sends them: JSON
    has no such numbers, and `NaN` in a message breaks strict parsers."""
    if isinstance(obj, float):
        return obj if isfinite(obj) else repr(float(obj))
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


_finite_encoder = json.JSONEncoder(default=lambda o: _finite(_json_default(o)), ensure_ascii=False,
                                   check_circular=False, allow_nan=False, separators=(",", ":"))


def pack(obj) -> bytes:
    """Strict JSON in valid UTF-8, whatever the content holds."""
    try:
        text = _encoder.encode(obj)
    except ValueError:  # a NaN or an infinity somewhere: rare, so the walk is only done then
        text = _finite_encoder.encode(_finite(obj))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates (undecodable bytes kept by surrogateescape, broken pairs) are not
        # UTF-8: pairs are joined, lone ones become U+FFFD, so the frontend shows a mark
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


def unpack(data: bytes):
    """JSON -> object; WireError for anything that is not JSON we can hold (including nesting
    deep enough to exhaust the recursion limit: RecursionError must not escape the codec)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise WireError("invalid JSON: nested too deeply") from None


class Signer:
    """HMAC signing with `hmac-<any hashlib name>`; an empty key means unsigned."""

    def __init__(self, key: bytes | str = b"", scheme: str = "hmac-sha256"):
        if isinstance(key, str):
            key = key.encode("ascii")
        if not scheme.startswith("hmac-"):
            raise ValueError(f"unsupported signature_scheme {scheme!r} (expected hmac-<hash>)")
        digest = scheme[len("hmac-"):]
        try:
            hashlib.new(digest)
        except (ValueError, TypeError):
            raise ValueError(f"unsupported signature_scheme {scheme!r}: unknown hash {digest!r}") from None
        self.key = key
        self.digest = digest
        self._template = hmac.new(key, digestmod=digest) if key else None

    def sign(self, parts) -> bytes:
        if self._template is None:
            return b""
        h = self._template.copy()
        for p in parts:
            h.update(p)
        return h.hexdigest().encode("ascii")

    def verify(self, signature: bytes, parts) -> bool:
        if self._template is None:
            return True
        return hmac.compare_digest(signature, self.sign(parts))


def _depth_over(obj, limit: int) -> bool:
    """True if containers nest more than `limit` levels below obj (iterative: no recursion)."""
    stack = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            o = o.values()
        elif not isinstance(o, list):
            continue
        if d >= limit:
            return True
        stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return False


class Codec:
    """Turns Messages into frames and frames back into Messages.

    `max_header_depth`: header and parent_header are echoed to every client in replies and on
    iopub, so they may not nest deeper than this (a hostile sender could otherwise make other
    clients' decoders hit their recursion limit). Real headers are flat: 2 levels at most."""

    def __init__(self, signer: Signer, replay_window: int = 2 ** 16, max_header_depth: int = 16):
        self.signer = signer
        self.max_header_depth = max_header_depth
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._window = replay_window

    def serialize(self, msg: Message) -> list:
        parts = [pack(msg.header), pack(msg.parent_header), pack(msg.metadata), pack(msg.content)]
        frames = list(msg.identities)
        frames.append(DELIM)
        frames.append(self.signer.sign(parts))
        frames.extend(parts)
        frames.extend(msg.buffers)
        return frames

    def deserialize(self, frames: list) -> Message:
        frames = [getattr(f, "bytes", f) for f in frames]  # zmq.Frame -> bytes
        try:
            i = frames.index(DELIM)
        except ValueError:
            raise WireError("no <IDS|MSG> delimiter") from None
        identities, rest = frames[:i], frames[i + 1:]
        if len(rest) < 5:
            raise WireError(f"expected at least 5 frames after the delimiter, got {len(rest)}")
        signature, parts, buffers = bytes(rest[0]), [bytes(p) for p in rest[1:5]], rest[5:]
        if self.signer.key:
            if not signature:
                raise WireError("unsigned message")
            if not self.signer.verify(signature, parts):
                raise WireError("invalid signature")
            if signature in self._seen:
                raise WireError("replayed signature")
            self._seen[signature] = None
            if len(self._seen) > self._window:
                self._seen.popitem(last=False)
        try:
            header, parent, metadata, content = (unpack(p) for p in parts)
        except WireError:
            raise
        except (ValueError, UnicodeDecodeError) as e:
            raise WireError(f"invalid JSON: {e}") from None
        if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
            raise WireError("header is not an object with a msg_type")
        if not all(isinstance(x, dict) for x in (parent, metadata, content)):
            raise WireError("parent_header, metadata and content must be objects")
        if _depth_over(header, self.max_header_depth) or _depth_over(parent, self.max_header_depth):
            raise WireError(f"header or parent_header nested deeper than {self.max_header_depth}")
        return Message(header, parent, metadata, content, list(buffers), identities)
