"""`geokernel launch`: geokernel as a remote kernel of Jupyter Enterprise Gateway.

EG's remote process proxies (distributed/SSH, Kubernetes, Docker, YARN) start a launcher on
the kernel's host that picks the kernel's ports, sends the connection info back encrypted to
EG (response.py) and serves EG's signal/shutdown requests on a "comm port" (listener.py).
Here the launcher and the kernel are one process and one OS thread: the listener is a
greenlet that the kernel's hub serves."""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("geokernel.launcher")


def _write_connection_file(opts, ports, key: str) -> str:
    import json
    import tempfile

    names = ("shell", "iopub", "stdin", "hb", "control")  # EG's launcher's order
    info = {f"{n}_port": p for n, p in zip(names, ports)}
    info.update(ip=opts.ip, key=key, transport="tcp", signature_scheme="hmac-sha256",
                kernel_name="")
    folder = tempfile.mkdtemp(prefix="geokernel-eg-")  # 0700: the file holds the key
    path = os.path.join(folder, f"kernel-{opts.kernel_id}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f)
    return path


def _remove(path: str) -> None:
    try:
        os.remove(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


def launch(opts) -> None:
    import uuid

    import gevent.socket

    from ..assembly import run_kernel
    from . import response
    from .listener import CommListener
    from .ports import bind_socket, select_ports

    ports = select_ports(5, opts.ip, opts.port_range)
    path = _write_connection_file(opts, ports, str(uuid.uuid4()))
    if opts.response_address:
        import json

        comm = CommListener(bind_socket(opts.ip, opts.port_range, factory=gevent.socket.socket),
                            # the kernel has read the file by the hub's first turn: no key left
                            on_first_turn=lambda: _remove(path))
        comm.start()
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        info.update(pid=os.getpid(), pgid=os.getpgid(0), comm_port=comm.port,
                    kernel_id=opts.kernel_id)
        try:
            response.send(opts.response_address, response.encrypt(info, opts.public_key))
        except response.ResponseError:
            _remove(path)
            raise
    else:  # EG's "pull" mode: whoever started us reads the file; no comm port (as EG's launcher)
        sys.stderr.write(f"geokernel launch: connection file {path}\n")
    # the launching shell (ssh's `nohup ... &`) exits at once: no parent watch
    run_kernel(path, opts.log_level, watch_parent=False)


def main(argv) -> None:
    from .options import OptionsError, parse
    from .ports import PortError
    from .response import ResponseError

    try:
        opts = parse(argv)
    except OptionsError as e:
        sys.stderr.write(f"geokernel launch: error: {e}\n")
        raise SystemExit(2)
    try:
        launch(opts)
    except (ResponseError, PortError, OSError) as e:
        sys.stderr.write(f"geokernel launch: error: {e}\n")
        raise SystemExit(1)
