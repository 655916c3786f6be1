"""Connection files: pick free ports, write/read the JSON the kernel is started with."""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
import uuid
from dataclasses import asdict, dataclass

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


@dataclass
class ConnectionInfo:
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int
    hb_port: int
    ip: str = "127.0.0.1"
    key: str = ""
    transport: str = "tcp"
    signature_scheme: str = "hmac-sha256"
    kernel_name: str = ""
    # CurveZMQ keypair (Z85 text), as jupyter_client 8.9+ writes with transport_encryption:
    # the kernel serves with it, clients use it and the public key as the server's
    curve_publickey: str | None = None
    curve_secretkey: str | None = None

    def url(self, channel: str) -> str:
        port = getattr(self, f"{channel}_port")
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{port}"
        return f"tcp://{self.ip}:{port}"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


_recently_issued: dict = {}  # port -> time handed out; not handed out again for a minute
_REISSUE_AFTER = 60.0


def free_ports(n: int, ip: str = "127.0.0.1") -> list[int]:
    """n distinct free TCP ports. No SO_REUSEADDR (that lets bind(0) return a port still in
    use), and a port handed out recently is skipped: a kernel started concurrently may not have
    bound it yet."""
    now = time.monotonic()
    for port, when in list(_recently_issued.items()):
        if now - when > _REISSUE_AFTER:
            del _recently_issued[port]
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((ip, 0))
            socks.append(s)  # keep every socket open until all ports are chosen
            port = s.getsockname()[1]
            if port not in _recently_issued:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    for port in ports:
        _recently_issued[port] = now
    return ports


def runtime_dir() -> str:
    from jupyter_core.paths import jupyter_runtime_dir  # lazy: only for the path
    path = jupyter_runtime_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def new_connection_info(kernel_name: str = "", ip: str = "127.0.0.1",
                        encrypt: bool = False) -> ConnectionInfo:
    """Fresh ports and key; with `encrypt`, a CurveZMQ keypair too (the kernelspec must declare
    metadata.supported_encryption ["curve"])."""
    ports = free_ports(len(PORT_NAMES), ip)
    curve = {}
    if encrypt:
        import zmq
        pub, sec = zmq.curve_keypair()
        curve = {"curve_publickey": pub.decode("ascii"), "curve_secretkey": sec.decode("ascii")}
    return ConnectionInfo(**dict(zip(PORT_NAMES, ports)), ip=ip, key=secrets.token_hex(32),
                          kernel_name=kernel_name, **curve)


def write_connection_file(info: ConnectionInfo, path: str | None = None) -> str:
    """Write `info` (mode 0600: the key is a secret) and return the path."""
    if path is None:
        path = os.path.join(runtime_dir(), f"kernel-{uuid.uuid4()}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info.to_dict(), f, indent=1)
    return path


def read_connection_file(path: str) -> ConnectionInfo:
    with open(path) as f:
        data = json.load(f)
    known = {k: data[k] for k in ConnectionInfo.__dataclass_fields__ if k in data}
    return ConnectionInfo(**known)
