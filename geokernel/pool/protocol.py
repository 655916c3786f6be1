"""The zygote's control channel: one JSON object per datagram on a SOCK_SEQPACKET Unix socket
pair (message boundaries are kept, and file descriptors travel with a message as SCM_RIGHTS).

provisioner -> zygote: {"op": "fork", "id": n, "argv": [...], "env": {...}, "cwd": "...",
                        "owner": pid} with fds [stdin, stdout, stderr(, ready)]: the kernel
                        writes one byte to `ready` once it listens on its ports
zygote -> provisioner: {"op": "ready", "pid": zygote_pid, "warm": {...}} once, at start;
                       {"op": "forked", "id": n, "pid": kernel_pid} with fds [pidfd];
                       {"op": "error", "id": n, "error": "..."};
                       {"op": "exit", "pid": kernel_pid, "code": returncode} whenever a kernel
                       ends (returncode as subprocess reports it: -N for signal N)
"""
from __future__ import annotations

import json
import os
import socket

MAX_MESSAGE = 1 << 20  # a fork request carries the kernel's whole environment
MAX_FDS = 8


class ChannelClosed(Exception):
    """The other end of the control channel is gone."""


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    data = json.dumps(message).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"control message of {len(data)} bytes is over {MAX_MESSAGE}")
    socket.send_fds(sock, [data], list(fds))


def recv(sock: socket.socket) -> tuple[dict, list[int]]:
    """One message and the fds that came with it (the caller owns and closes them)."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    for fd in fds:  # (SCM_RIGHTS fds arrive without close-on-exec, unlike Python's own)
        os.set_inheritable(fd, False)
    if not data:
        for fd in fds:
            _close(fd)
        raise ChannelClosed("control channel closed")
    try:
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("not an object")
    except ValueError as e:
        for fd in fds:
            _close(fd)
        raise ChannelClosed(f"bad control message: {e}") from None
    return message, fds


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
