"""The kernel's own sockets among the process's file descriptors, found by their local port:
a forked child closes them (forkchild.py), the completer warm-up watches them for requests
(ipython/warmup.py). Standard library only: it runs in a fresh fork child."""
from __future__ import annotations

import os
import socket
import stat


def socket_fds_on_ports(ports) -> list[int]:
    """The fds (above 2) of TCP sockets, listening or connected, whose local port is in
    `ports`."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            local = s.getsockname()
            if isinstance(local, tuple) and len(local) >= 2 and local[1] in ports:
                found.append(fd)
        except OSError:
            pass
        finally:
            s.detach()  # the fd stays open: it is the kernel's
    return found
