"""Sockets to one kernel: one receiving greenlet per socket, replies routed by parent msg_id.

zmq.green allows a single waiting greenlet per socket, so each socket has exactly one
receiver greenlet; everything else talks to it through per-request queues.
"""
from __future__ import annotations

import logging
from typing import Callable

import gevent
import gevent.lock
import gevent.queue
import zmq
import zmq.green as zmq_green

from ..message import Message, make_header
from ..wire import Codec, Signer, WireError
from .connection import ConnectionInfo

log = logging.getLogger(__name__)

DIED = "died"  # queue item tag: ("died", exit_code)


class Channels:
    """Connected shell/control/stdin (DEALER), iopub (SUB) and heartbeat (REQ) sockets."""

    def __init__(self, info: ConnectionInfo, session: str, context=None):
        self.info = info
        self.session = session
        self.codec = Codec(Signer(info.key, info.signature_scheme))
        self.ctx = context or zmq_green.Context.instance()
        self._pending: dict[str, gevent.queue.Queue] = {}
        self._listeners: list[Callable[[Message], None]] = []
        self._send_locks = {}
        self._sockets = {}
        ident = session.encode("ascii")
        for name in ("shell", "control", "stdin"):
            # Same identity on shell and stdin: the kernel routes input_request by the
            # identity of the shell request's sender.
            self._sockets[name] = self._connect(zmq.DEALER, name, identity=ident)
        self._sockets["iopub"] = self._connect(zmq.SUB, "iopub")
        self._sockets["iopub"].setsockopt(zmq.SUBSCRIBE, b"")
        for name in self._sockets:
            self._send_locks[name] = gevent.lock.Semaphore()
        self._hb = None
        self._hb_lock = gevent.lock.Semaphore()
        self._greenlets = [gevent.spawn(self._recv_loop, n, s) for n, s in self._sockets.items()]
        self.closed = False

    def _connect(self, kind: int, channel: str, identity: bytes | None = None):
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        # Retry connecting often: the kernel binds a moment after launch and start-up
        # latency is one of the things we measure.
        sock.setsockopt(zmq.RECONNECT_IVL, 20)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        if self.info.curve_secretkey:  # CurveZMQ: the kernel's public key authenticates it
            sock.curve_secretkey = self.info.curve_secretkey.encode("ascii")
            sock.curve_publickey = self.info.curve_publickey.encode("ascii")
            sock.curve_serverkey = self.info.curve_publickey.encode("ascii")
        sock.connect(self.info.url(channel))
        return sock

    # -- receiving ---------------------------------------------------------------------
    def _recv_loop(self, channel: str, sock) -> None:
        while True:
            try:
                frames = sock.recv_multipart(copy=True)
            except zmq.ZMQError as e:
                if self.closed or e.errno in (zmq.ENOTSOCK, zmq.ETERM):
                    return
                log.warning("%s recv failed: %s", channel, e)
                gevent.sleep(0.05)
                continue
            try:
                msg = self.codec.deserialize(frames)
            except WireError as e:
                log.warning("dropping bad message on %s: %s", channel, e)
                continue
            self._route(channel, msg)

    def _route(self, channel: str, msg: Message) -> None:
        if channel == "iopub":
            for cb in list(self._listeners):
                try:
                    cb(msg)
                except Exception:
                    log.exception("iopub listener %r failed", cb)
        queue = self._pending.get(msg.parent_header.get("msg_id", ""))
        if queue is not None:
            queue.put((channel, msg))
        elif channel == "stdin" and msg.msg_type == "input_request":
            # Nobody can answer: reply empty so the kernel does not block forever.
            log.warning("input_request without a waiting request; answering ''")
            self.send("stdin", "input_reply", {"value": ""}, parent=msg.header)
        elif channel != "iopub":
            log.debug("unrouted %s %s", channel, msg.msg_type)

    def add_listener(self, cb: Callable[[Message], None]) -> None:
        self._listeners.append(cb)

    def remove_listener(self, cb: Callable[[Message], None]) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    # -- request bookkeeping -------------------------------------------------------------
    def register(self, msg_id: str, queue: gevent.queue.Queue | None = None) -> gevent.queue.Queue:
        q = queue if queue is not None else gevent.queue.Queue()
        self._pending[msg_id] = q
        return q

    def unregister(self, msg_id: str) -> None:
        self._pending.pop(msg_id, None)

    def fail_all(self, exit_code) -> None:
        """The kernel died: wake every waiter."""
        # Several msg_ids may share one queue (start-up retries): wake each queue once.
        for q in {id(q): q for q in self._pending.values()}.values():
            q.put((DIED, exit_code))

    # -- sending -------------------------------------------------------------------------
    def build(self, msg_type: str, content: dict, parent: dict | None = None,
              metadata: dict | None = None, buffers: list | None = None) -> Message:
        return Message(make_header(msg_type, self.session), parent or {}, metadata or {},
                       content, list(buffers or []))

    def send_msg(self, channel: str, msg: Message) -> Message:
        frames = self.codec.serialize(msg)
        # A lock per socket: two greenlets blocked in send would trip zmq.green's
        # single-waiter assertion, and a multipart message must never interleave.
        with self._send_locks[channel]:
            self._sockets[channel].send_multipart(frames, copy=False)
        return msg

    def send(self, channel: str, msg_type: str, content: dict, **kw) -> Message:
        return self.send_msg(channel, self.build(msg_type, content, **kw))

    # -- heartbeat -----------------------------------------------------------------------
    def ping(self, timeout: float = 1.0) -> bool:
        """One heartbeat round trip; a REQ socket that timed out is unusable, so recreate it."""
        with self._hb_lock:
            if self._hb is None:
                self._hb = self._connect(zmq.REQ, "hb")
            payload = b"ping"
            try:
                with gevent.Timeout(timeout):
                    self._hb.send(payload)
                    return self._hb.recv() == payload
            except gevent.Timeout:
                self._hb.close(linger=0)
                self._hb = None
                return False

    def reset_heartbeat(self) -> None:
        with self._hb_lock:
            if self._hb is not None:
                self._hb.close(linger=0)
                self._hb = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        gevent.killall(self._greenlets, block=True, timeout=1)
        for sock in self._sockets.values():
            sock.close(linger=0)
        self.reset_heartbeat()
        self._pending.clear()
