"""Comm messages for KernelHandle: open/send/close and per-comm receive queues."""
from __future__ import annotations

import gevent
import gevent.queue

from ..message import Message, new_id
from .channels import DIED
from .errors import KernelDiedError, KernelTimeoutError

COMM_TYPES = ("comm_open", "comm_msg", "comm_close")


class CommMixin:
    """Needs `channels`, `kernel_name` and `request_timeout` from KernelHandle."""

    def _init_comms(self) -> None:
        # Only comms we opened or asked to watch get a queue, so unread widget traffic
        # from the kernel does not pile up; use add_iopub_listener for everything else.
        self._comm_queues: dict[str, gevent.queue.Queue] = {}
        self.channels.add_listener(self._on_comm_message)

    def _on_comm_message(self, msg: Message) -> None:
        if msg.msg_type in COMM_TYPES:
            q = self._comm_queues.get(msg.content.get("comm_id", ""))
            if q is not None:
                q.put(msg)

    def _fail_comms(self, exit_code) -> None:
        for q in self._comm_queues.values():
            q.put((DIED, exit_code))

    def add_iopub_listener(self, callback) -> None:
        """callback(msg) for every iopub message (runs in the receiver greenlet: don't block)."""
        self.channels.add_listener(callback)

    def remove_iopub_listener(self, callback) -> None:
        self.channels.remove_listener(callback)

    def watch_comm(self, comm_id: str) -> None:
        """Queue messages of a comm the kernel opened, for recv_comm()."""
        self._comm_queues.setdefault(comm_id, gevent.queue.Queue())

    def comm_open(self, target_name: str, data: dict | None = None, buffers: list | None = None,
                  comm_id: str | None = None, metadata: dict | None = None) -> str:
        comm_id = comm_id or new_id()
        self.watch_comm(comm_id)
        self.channels.send("shell", "comm_open",
                           {"comm_id": comm_id, "target_name": target_name, "data": data or {}},
                           metadata=metadata, buffers=buffers)
        return comm_id

    def comm_send(self, comm_id: str, data: dict, buffers: list | None = None,
                  metadata: dict | None = None) -> Message:
        return self.channels.send("shell", "comm_msg", {"comm_id": comm_id, "data": data},
                                  metadata=metadata, buffers=buffers)

    def comm_close(self, comm_id: str, data: dict | None = None) -> Message:
        self._comm_queues.pop(comm_id, None)
        return self.channels.send("shell", "comm_close", {"comm_id": comm_id, "data": data or {}})

    def recv_comm(self, comm_id: str, timeout: float | None = -1.0) -> Message:
        """Next comm_msg/comm_close (or comm_open) for comm_id; timeout -1 = request_timeout."""
        if timeout is not None and timeout < 0:
            timeout = self.request_timeout
        q = self._comm_queues.get(comm_id)
        if q is None:
            raise KeyError(f"comm {comm_id!r} is not watched (use comm_open or watch_comm)")
        try:
            item = q.get(timeout=timeout)
        except gevent.queue.Empty:
            raise KernelTimeoutError(self.kernel_name, f"a message on comm {comm_id}", timeout) from None
        if isinstance(item, tuple) and item[0] == DIED:
            raise KernelDiedError(self.kernel_name, item[1], f"recv_comm({comm_id})")
        return item
