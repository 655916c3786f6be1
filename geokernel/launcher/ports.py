"""Choosing ports inside EG's --port-range (random tries, as EG's launcher does)."""
from __future__ import annotations

import random
import socket

MAX_PORT_RETRIES = 5  # EG's default (MAX_PORT_RANGE_RETRIES)


class PortError(Exception):
    """No free port in the range after the allowed retries."""


def bind_socket(ip: str, port_range: tuple[int, int], retries: int = MAX_PORT_RETRIES,
                factory=socket.socket):
    """A TCP socket bound to a free port in `port_range` ((0, 0): any port the OS picks)."""
    lower, upper = port_range
    for _ in range(retries + 1):
        port = 0 if upper == lower == 0 else random.randint(lower, upper)
        sock = factory(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((ip, port))
            return sock
        except OSError:
            sock.close()
            if port == 0:
                raise
    raise PortError(f"no free port in {lower}..{upper} after {retries} retries")


def select_ports(count: int, ip: str, port_range: tuple[int, int],
                 retries: int = MAX_PORT_RETRIES) -> list[int]:
    """`count` distinct free ports: bound together (so they differ), then released for the
    kernel's transport to bind (the same short race as EG's launcher and jupyter_client)."""
    socks = []
    try:
        for _ in range(count):
            socks.append(bind_socket(ip, port_range, retries))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
