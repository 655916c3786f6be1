"""All five channels of a kernel over one Jupyter Server websocket (/api/kernels/ID/channels).

Same interface as Channels (register/send_msg/add_listener/...), so KernelHandle's execute,
comms and stdin code runs unchanged. Two wire formats:
- `v1.kernel.websocket.jupyter.org` (preferred): one binary message = 8-byte little-endian
  offset count, the offsets, the channel name, then header/parent/metadata/content/buffers
  as in ZMQ frames (the server signs them; we never see the key).
- the legacy protocol: a JSON text message with a "channel" key, or when there are buffers
  a binary message of big-endian uint32 count + offsets, the JSON, then the buffers.
"""
from __future__ import annotations

import json
import logging
import struct
from typing import Callable

import gevent

from ..message import Message
from ..wire import pack, unpack
from .channels import Channels
from .remote_ws import WebSocket, WebSocketError

log = logging.getLogger(__name__)

V1 = "v1.kernel.websocket.jupyter.org"
CHANNELS = ("shell", "control", "stdin", "iopub")


def encode_v1(channel: str, msg: Message) -> bytes:
    parts = [pack(msg.header), pack(msg.parent_header), pack(msg.metadata), pack(msg.content)]
    parts += [bytes(b) for b in msg.buffers]
    name = channel.encode("utf-8")
    offsets = [8 * (len(parts) + 3)]
    offsets.append(offsets[-1] + len(name))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    return b"".join([head, name, *parts])


def decode_v1(data: bytes) -> tuple[str, Message]:
    if len(data) < 8:
        raise ValueError("v1 message shorter than its offset count")
    n = struct.unpack_from("<Q", data)[0]
    if not 6 <= n <= 1 + 4 + 10_000 or 8 * (n + 1) > len(data):
        raise ValueError(f"v1 message with a bad offset count {n}")
    offsets = struct.unpack_from(f"<{n}Q", data, 8)
    if list(offsets) != sorted(offsets) or offsets[-1] > len(data):
        raise ValueError("v1 message offsets out of order or past the end")
    channel = data[offsets[0]:offsets[1]].decode("utf-8")
    parts = [data[offsets[i]:offsets[i + 1]] for i in range(1, n - 1)]
    header, parent, metadata, content = (unpack(p) for p in parts[:4])
    return channel, Message(header, parent, metadata, content, parts[4:])


def encode_legacy(channel: str, msg: Message):
    body = {"channel": channel, "header": msg.header, "parent_header": msg.parent_header,
            "metadata": msg.metadata, "content": msg.content}
    if not msg.buffers:
        return pack(body).decode("utf-8", "surrogateescape")
    bufs = [pack(body)] + [bytes(b) for b in msg.buffers]
    offsets = [4 * (len(bufs) + 1)]
    for b in bufs[:-1]:
        offsets.append(offsets[-1] + len(b))
    return struct.pack(f"!{len(bufs) + 1}I", len(bufs), *offsets) + b"".join(bufs)


def decode_legacy(data) -> tuple[str, Message]:
    buffers: list = []
    if isinstance(data, bytes):
        n = struct.unpack_from("!I", data)[0]
        if not 1 <= n <= 10_000 or 4 * (n + 1) > len(data):
            raise ValueError(f"binary message with a bad buffer count {n}")
        offsets = list(struct.unpack_from(f"!{n}I", data, 4)) + [len(data)]
        body = json.loads(data[offsets[0]:offsets[1]])
        buffers = [data[a:b] for a, b in zip(offsets[1:-1], offsets[2:])]
    else:
        body = json.loads(data)
    return body.get("channel", ""), Message(body["header"], body.get("parent_header"),
                                            body.get("metadata"), body.get("content"), buffers)


class RemoteChannels(Channels):
    """A Channels look-alike over a websocket; on_lost(reason) runs if the connection drops."""

    def __init__(self, ws: WebSocket, session: str,
                 on_lost: Callable[[str], None] | None = None):
        # Channels.__init__ opens ZMQ sockets: set up the shared bookkeeping ourselves.
        self.info = None
        self.session = session
        self.ws = ws
        self.v1 = ws.subprotocol == V1
        self._pending = {}
        self._listeners = []
        self._on_lost = on_lost
        self.closed = False
        self._greenlets = [gevent.spawn(self._recv_loop)]

    def _recv_loop(self) -> None:
        while True:
            try:
                data = self.ws.recv()
            except WebSocketError as e:  # protocol violation: the socket is closed already
                data, reason = None, str(e)
            else:
                reason = f"websocket closed (code {self.ws.close_code})"
            if data is None:
                if not self.closed:
                    log.warning("kernel connection lost: %s", reason)
                    self.fail_all(None)
                    if self._on_lost is not None:
                        self._on_lost(reason)
                return
            try:
                channel, msg = decode_v1(data) if self.v1 and isinstance(data, bytes) \
                    else decode_legacy(data)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
                log.warning("dropping bad websocket message (%d bytes): %s", len(data), e)
                continue
            if channel not in CHANNELS:
                log.warning("dropping message on unknown channel %r", channel)
                continue
            self._route(channel, msg)

    def send_msg(self, channel: str, msg: Message) -> Message:
        if channel not in CHANNELS:
            raise ValueError(f"no channel {channel!r} over the websocket")
        self.ws.send(encode_v1(channel, msg) if self.v1 else encode_legacy(channel, msg))
        return msg

    def ping(self, timeout: float = 1.0) -> bool:
        """Websocket ping/pong with the server (the kernel's heartbeat is not exposed)."""
        return self.ws.ping(timeout)

    def reset_heartbeat(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ws.close()
        gevent.killall(self._greenlets, block=True, timeout=1)
        self._pending.clear()
