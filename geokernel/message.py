"""The Message value and the small factories every layer shares (no I/O here)."""
from __future__ import annotations

import os
from datetime import datetime, timezone

PROTOCOL_VERSION = "5.5"


def utcnow_iso() -> str:
    """ISO-8601 with an explicit timezone, as the messaging spec asks."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    """A random (version 4) UUID as 32 hex digits, like uuid.uuid4().hex, without importing
    uuid (which imports platform: ~2 ms of start-up)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    return b.hex()


def make_header(msg_type: str, session: str, username: str = "") -> dict:
    return {
        "msg_id": new_id(),
        "msg_type": msg_type,
        "session": session,
        "username": username or os.environ.get("USER", "kernel"),
        "date": utcnow_iso(),
        "version": PROTOCOL_VERSION,
    }


class Message:
    """One Jupyter message: its four dicts, binary buffers and the routing identities.

    A plain class, not a dataclass: importing dataclasses (and with it inspect) cost ~6 ms of
    the kernel's start-up, before the first kernel_info reply.
    """

    __slots__ = ("header", "parent_header", "metadata", "content", "buffers", "identities")
    __hash__ = None  # mutable, compared by value

    def __init__(self, header: dict, parent_header: dict | None = None, metadata: dict | None = None,
                 content: dict | None = None, buffers: list | None = None,
                 identities: list | None = None):
        self.header = header
        self.parent_header = {} if parent_header is None else parent_header
        self.metadata = {} if metadata is None else metadata
        self.content = {} if content is None else content
        self.buffers = [] if buffers is None else buffers
        self.identities = [] if identities is None else identities

    def __eq__(self, other):
        if other.__class__ is not Message:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"Message({fields})"

    @property
    def msg_type(self) -> str:
        return self.header.get("msg_type", "")

    @property
    def msg_id(self) -> str:
        return self.header.get("msg_id", "")


def reply_type(request_type: str) -> str:
    """`foo_request` -> `foo_reply`; anything else gets `_reply` appended."""
    if request_type.endswith("_request"):
        return request_type[: -len("_request")] + "_reply"
    return request_type + "_reply"


def error_content(ename: str, evalue: str, traceback: list | None = None) -> dict:
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": traceback or []}
