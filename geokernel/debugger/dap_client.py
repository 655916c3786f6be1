"""A Debug Adapter Protocol client on a gevent socket, talking to pydevd in this process.

Everything here runs in the kernel's thread, in greenlets: one reader greenlet owns the socket's
receive side; senders take a lock so two greenlets never interleave one message's bytes.
pydevd's own threads only ever touch their end of the TCP connection, never our sockets.
Requests get our own `seq` numbers (clients' and internal requests could collide otherwise).
"""
from __future__ import annotations

import itertools
import json
import logging
from typing import Callable

import gevent
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore
from gevent.socket import create_connection

log = logging.getLogger("geokernel.debugger.dap")

_HEADER = b"Content-Length: "
_SEP = b"\r\n\r\n"


class DapError(Exception):
    """The debugger connection closed or did not answer in time."""


def encode(msg: dict) -> bytes:
    body = json.dumps(msg, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
    return _HEADER + str(len(body)).encode("ascii") + _SEP + body


class DapParser:
    """Sans-IO: feed bytes, get complete messages (dicts) back."""

    def __init__(self):
        self._buf = b""

    def feed(self, data: bytes) -> list:
        self._buf += data
        out = []
        while True:
            end = self._buf.find(_SEP)
            if end < 0:
                return out
            length = None
            for line in self._buf[:end].split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length is None:
                raise ValueError("DAP header without Content-Length")
            start = end + len(_SEP)
            if len(self._buf) - start < length:
                return out
            out.append(json.loads(self._buf[start:start + length]))
            self._buf = self._buf[start + length:]


class DapConnection:
    def __init__(self, host: str, port: int, on_event: Callable[[dict], None],
                 on_send: Callable[[], None] | None = None):
        self._sock = create_connection((host, port))
        self._on_event = on_event
        self._on_send = on_send  # lets the suspend pump hand the thread to pydevd at once
        self._lock = BoundedSemaphore()
        self._seq = itertools.count(1)
        self._pending: dict[int, AsyncResult] = {}
        self._reader = gevent.spawn(self._read_loop)
        self.closed = False

    @property
    def busy(self) -> bool:
        """A request is waiting for its response."""
        return bool(self._pending)

    def request(self, command: str, arguments: dict | None = None, timeout: float = 30.0,
                base: dict | None = None) -> dict:
        """Send a request and wait (cooperatively) for its response."""
        msg = dict(base or {}, command=command)
        if arguments is not None:
            msg["arguments"] = arguments
        waiter = AsyncResult()
        if self.closed:
            raise DapError("debugger connection is closed")
        seq = next(self._seq)
        self._pending[seq] = waiter
        try:
            data = encode(dict(msg, seq=seq, type="request"))
            with self._lock:
                self._sock.sendall(data)
            if self._on_send is not None:
                self._on_send()
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise DapError(f"no response to {command} within {timeout:.0f} s") from None
        finally:
            self._pending.pop(seq, None)

    def close(self) -> None:
        self.closed = True
        self._reader.kill(block=False)
        self._sock.close()

    def _read_loop(self) -> None:
        parser = DapParser()
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                for msg in parser.feed(data):
                    self._dispatch(msg)
        except OSError as e:
            log.warning("debugger connection lost: %s", e)
        finally:
            self.closed = True
            for waiter in self._pending.values():
                waiter.set_exception(DapError("debugger connection closed"))

    def _dispatch(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "response":
            waiter = self._pending.get(msg.get("request_seq"))
            if waiter is not None:
                waiter.set(msg)
            else:
                log.debug("response to nobody: %s", msg.get("command"))
        elif kind == "event":
            try:
                self._on_event(msg)
            except Exception:
                log.exception("debug event handler failed")
        else:
            log.debug("ignored DAP %s", kind)
