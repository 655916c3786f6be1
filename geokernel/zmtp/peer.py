"""One accepted connection: a reader greenlet (bytes -> framing events -> owner) and a writer
greenlet that flushes a per-peer queue.

Sending never blocks or switches: when nothing is queued or being written, `send_parts` tries
one non-blocking send right away (so a message is on the wire even if the thread then blocks in
a long C call); what does not fit is queued. Queuing sets an Event when the queue goes from
empty to non-empty, which wakes the writer on the hub's next turn.
The writer joins everything queued so far into one buffer and does one `sendall`, so a burst
of messages costs one syscall, not one per frame or per message.
"""
from __future__ import annotations

import logging

import gevent
from gevent.event import Event

from .framing import CMD, MESSAGE, READY, Connection, ProtocolError, encode_message

log = logging.getLogger("geokernel.zmtp")

_READ_SIZE = 65536
_BIG_READ_SIZE = 1 << 20  # while a large frame is arriving: fewer, larger reads


class Peer:
    def __init__(self, sock, owner, hwm: int):
        self.sock = sock
        self.owner = owner  # a ServerSocket: on_ready/on_message/on_command/on_close
        self.hwm = hwm  # queued messages beyond which new ones are dropped (like zmq SNDHWM)
        self.identity: bytes | None = None  # set by a ROUTER owner
        self.conn = Connection(owner.socket_type, owner.peer_types)
        self.closed = False
        self._closing = False  # graceful: flush the queue, then close
        self._queue: list = []
        self._queued = 0
        self._writing = False  # the writer is inside sendall: a direct send would interleave
        self._raw = getattr(sock, "_sock", None)  # gevent's non-blocking OS-level socket
        self._wake = Event()
        self._reader = gevent.spawn(self._read_loop)
        self._writer = gevent.spawn(self._write_loop)
        self._enqueue(self.conn.data_to_send())  # our greeting, immediately

    def __repr__(self) -> str:
        return f"<Peer {self.owner.name} id={self.identity!r}>"

    # ---- sending (any greenlet; never blocks) ----------------------------------------------
    def send(self, frames) -> bool:
        return self.send_parts(encode_message(frames, []))

    def send_parts(self, parts: list) -> bool:
        """Queue an encoded message (see framing.encode_message); False when dropped."""
        if self.closed or self._closing:
            return False
        if self._queued >= self.hwm:
            return False
        if self._enqueue_list(parts):
            self._queued += 1
        return True

    def _enqueue(self, data: bytes) -> None:
        if data:
            self._enqueue_list([data])

    def _enqueue_list(self, parts: list) -> bool:
        """Send now if the line is free, else queue; True when something was queued."""
        if not self._queue:
            if not self._writing and self._raw is not None:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                try:
                    n = self._raw.send(data)
                except OSError:  # full (EAGAIN) or broken: the writer sees the rest
                    n = 0
                if n == len(data):
                    return False
                parts = [memoryview(data)[n:]]
            self._wake.set()
        self._queue.extend(parts)
        return True

    # ---- greenlets ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        conn, sock, owner = self.conn, self.sock, self.owner
        try:
            while True:
                data = sock.recv(_BIG_READ_SIZE if conn.pending > _READ_SIZE else _READ_SIZE)
                if not data:
                    break
                events = conn.feed(data)
                if conn._out:
                    self._enqueue(conn.data_to_send())
                for ev in events:
                    kind = ev[0]
                    if kind is MESSAGE:
                        owner.on_message(self, ev[1])
                    elif kind is READY:
                        owner.on_ready(self, ev[1])
                    elif kind is CMD:
                        owner.on_command(self, ev[1], ev[2])
        except ProtocolError as e:
            log.warning("%s: closing connection: %s", self.owner.name, e)
            self._enqueue(conn.data_to_send())  # an ERROR command, if any
            self.shutdown()
            return
        except OSError as e:
            log.debug("%s: read error: %s", self.owner.name, e)
        except Exception:
            log.exception("%s: error while receiving", self.owner.name)
        self.close()

    def _write_loop(self) -> None:
        sock = self.sock
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._queue:
                    parts, self._queue, self._queued = self._queue, [], 0
                    self._writing = True
                    sock.sendall(parts[0] if len(parts) == 1 else b"".join(parts))
                    self._writing = False
                if self._closing:
                    break
        except OSError as e:
            log.debug("%s: write error: %s", self.owner.name, e)
        self.close()

    # ---- closing -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop reading; the writer flushes what is queued, then closes the connection."""
        if self.closed or self._closing:
            return
        self._closing = True
        self.owner.on_close(self)  # no new messages get routed here
        if self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        self._wake.set()

    def close(self) -> None:
        """Close now, dropping anything queued."""
        if self.closed:
            return
        self.closed = True
        self._queue, self._queued = [], 0
        if not self._closing:
            self.owner.on_close(self)
        current = gevent.getcurrent()
        for g in (self._reader, self._writer):
            if g is not current:
                g.kill(block=False)
        self.sock.close()

    def join(self, timeout: float | None) -> bool:
        """Wait for the writer to finish (after shutdown); True if it did."""
        self._writer.join(timeout)
        return self._writer.dead
