"""One accepted connection: a reader greenlet (bytes -> framing events -> owner) and a writer
greenlet that flushes a per-peer queue.

Sending never blocks or switches: when nothing is queued or being written, `send_parts` tries
one non-blocking send right away (so a message is on the wire even if the thread then blocks in
a long C call); what does not fit is queued. Queuing sets an Event when the queue goes from
empty to non-empty, which wakes the writer on the hub's next turn.
The writer joins everything queued so far into one buffer and does one `sendall`, so a burst
of messages costs one syscall, not one per frame or per message.

Bounds (see limits.Limits): the outbox counts messages and bytes until they are written (the
batch being written included), and drops at either bound; the inbox (messages handed to the
owner but not yet taken by the kernel) stops the reader at either bound; a connection that
has not finished its handshake within `handshake_timeout` is closed.

No reference cycles: the greenlets end by returning (GreenletExit is caught), and close()
drops the connection's buffers, so a peer's memory returns as soon as the socket forgets it,
without waiting for the cyclic GC.
"""
from __future__ import annotations

import logging

import gevent
from gevent import GreenletExit
from gevent.event import Event

from .framing import CMD, MESSAGE, READY, Connection, ProtocolError, encode_message
from .limits import Limits
from .ratelog import RateLimitedLog

log = logging.getLogger("geokernel.zmtp")
limited = RateLimitedLog(log)

_READ_SIZE = 65536
_BIG_READ_SIZE = 1 << 20  # while a large frame is arriving: fewer, larger reads


class Peer:
    def __init__(self, sock, owner, limits: Limits, mechanism=None):
        self.sock = sock
        self.owner = owner  # a ServerSocket: on_ready/on_message/on_command/on_close
        self.limits = limits
        self.identity: bytes | None = None  # set by a ROUTER owner
        self.conn = Connection(owner.socket_type, owner.peer_types,
                               max_frame_size=limits.max_frame_size,
                               max_message_size=limits.max_message_size,
                               max_frames=limits.max_frames, mechanism=mechanism)
        self.encrypted = mechanism is not None  # frames must be encoded per peer
        self.closed = False
        self._closing = False  # graceful: flush the queue, then close
        self._queue: list = []
        self._queued = 0  # messages not yet written (the batch in sendall included)
        self._queued_bytes = 0
        self.inbox_messages = 0  # handed to the owner, not yet taken by the kernel
        self.inbox_bytes = 0
        self._room = Event()  # set while the inbox has room
        self._room.set()
        self._writing = False  # the writer is inside sendall: a direct send would interleave
        self._raw = getattr(sock, "_sock", None)  # gevent's non-blocking OS-level socket
        self._wake = Event()
        self._reader = gevent.spawn(self._read_loop)
        self._writer = gevent.spawn(self._write_loop)
        self._timer = None
        if limits.handshake_timeout:
            self._timer = gevent.get_hub().loop.timer(limits.handshake_timeout)
            self._timer.start(self._handshake_expired)
        self._enqueue(self.conn.data_to_send())  # our greeting, immediately

    def __repr__(self) -> str:
        return f"<Peer {self.owner.name} id={self.identity!r}>"

    # ---- sending (any greenlet; never blocks) ----------------------------------------------
    def send(self, frames) -> bool:
        if self.encrypted:
            return self.send_parts(self.conn.mechanism.encrypt_message(frames))
        return self.send_parts(encode_message(frames, []))

    def send_parts(self, parts: list, nbytes: int = -1) -> bool:
        """Queue an encoded message (see framing.encode_message); False when dropped."""
        if self.closed or self._closing:
            return False
        if nbytes < 0:
            nbytes = sum(map(len, parts))
        if self._queued and (self._queued >= self.limits.outbox_messages
                             or self._queued_bytes + nbytes > self.limits.outbox_bytes):
            return False
        if self._enqueue_list(parts):  # False: it went out at once
            self._queued += 1
            self._queued_bytes += nbytes
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

    # ---- inbox accounting (called by the owner) --------------------------------------------
    def took(self, nbytes: int) -> None:
        """The kernel took one message of this peer's from the owner's inbox."""
        self.inbox_messages -= 1
        self.inbox_bytes -= nbytes
        if not self._room.is_set() and self._has_room():
            self._room.set()

    def _has_room(self) -> bool:
        return (self.inbox_messages < self.limits.inbox_messages
                and self.inbox_bytes < self.limits.inbox_bytes)

    # ---- greenlets ---------------------------------------------------------------------------
    def _handshake_expired(self) -> None:
        self._timer = None
        if self.conn.state != "open" and not self.closed:
            limited.warning("handshake:" + self.owner.name,
                            "%s: closing a connection that did not finish its handshake in %.0f s",
                            self.owner.name, self.limits.handshake_timeout)
            self.close()

    def _read_loop(self) -> None:
        conn, sock, owner = self.conn, self.sock, self.owner
        try:
            while True:
                size = _BIG_READ_SIZE if conn.pending > _READ_SIZE else _READ_SIZE
                data = sock.recv(size)
                if not data:
                    break
                events = conn.feed(data)
                if conn._out:
                    self._enqueue(conn.data_to_send())
                for ev in events:
                    kind = ev[0]
                    if kind is MESSAGE:
                        owner.on_message(self, ev[1])
                        if not self._room.is_set():
                            self._room.wait()  # backpressure: the kernel has enough of ours
                    elif kind is READY:
                        self._cancel_timer()
                        owner.on_ready(self, ev[1])
                    elif kind is CMD:
                        owner.on_command(self, ev[1], ev[2])
                if len(data) == size:  # probably more waiting: let other peers have a turn
                    gevent.sleep(0)
                data = events = ev = None
        except GreenletExit:
            return
        except ProtocolError as e:
            limited.warning("protocol:" + owner.name, "%s: closing connection: %s", owner.name,
                            str(e))  # str: a kept log record must not hold the traceback
            self._enqueue(conn.data_to_send())  # an ERROR command, if any
            self.conn.close()
            self.shutdown()
            return
        except OSError as e:
            log.debug("%s: read error: %s", owner.name, str(e))
        except Exception:
            limited.exception("read:" + owner.name, "%s: error while receiving", owner.name)
        self.close()

    def _write_loop(self) -> None:
        sock = self.sock
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._queue:
                    parts, self._queue = self._queue, []
                    queued, nbytes = self._queued, self._queued_bytes
                    self._writing = True
                    sock.sendall(parts[0] if len(parts) == 1 else b"".join(parts))
                    self._writing = False
                    parts = None
                    self._queued -= queued  # what was queued while sendall blocked stays counted
                    self._queued_bytes -= nbytes
                if self._closing:
                    break
        except GreenletExit:
            return
        except OSError as e:
            log.debug("%s: write error: %s", self.owner.name, str(e))
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None

    # ---- closing -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop reading; the writer flushes what is queued, then closes the connection."""
        if self.closed or self._closing:
            return
        self._closing = True
        self._cancel_timer()
        self.owner.on_close(self)  # no new messages get routed here
        if self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        self._wake.set()

    def close(self) -> None:
        """Close now, dropping anything queued."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        self._queue, self._queued, self._queued_bytes = [], 0, 0
        self.conn.close()
        if not self._closing:
            self.owner.on_close(self)
        current = gevent.getcurrent()
        for g in (self._reader, self._writer):
            if g is not current:
                g.kill(block=False)
        self._room.set()  # a reader waiting for room wakes (and is killed)
        self.sock.close()

    def join(self, timeout: float | None) -> bool:
        """Wait for the writer to finish (after shutdown); True if it did."""
        self._writer.join(timeout)
        return self._writer.dead
