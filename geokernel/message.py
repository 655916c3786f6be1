"""The Message value and the small factories every layer shares (no I/O here)."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

PROTOCOL_VERSION = "5.5"


def utcnow_iso() -> str:
    """ISO-8601 with an explicit timezone, as the messaging spec asks."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


def make_header(msg_type: str, session: str, username: str = "") -> dict:
    return {
        "msg_id": new_id(),
        "msg_type": msg_type,
        "session": session,
        "username": username or os.environ.get("USER", "kernel"),
        "date": utcnow_iso(),
        "version": PROTOCOL_VERSION,
    }


@dataclass
class Message:
    header: dict
    parent_header: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    content: dict = field(default_factory=dict)
    buffers: list = field(default_factory=list)
    identities: list = field(default_factory=list)

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
