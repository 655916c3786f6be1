"""Entry points: start a kernel from a kernelspec, or connect to a running one."""
from __future__ import annotations

import logging

from .connection import new_connection_info, read_connection_file, write_connection_file
from .discovery import KernelSpecInfo, get_kernelspec
from .errors import NoSuchKernelError
from .handle import KernelHandle

log = logging.getLogger(__name__)


def start_kernel(name: str = "python3", cwd: str | None = None, env: dict | None = None,
                 startup_timeout: float = 60.0, request_timeout: float = 60.0,
                 spec: KernelSpecInfo | None = None, server=None,
                 token: str | None = None, encrypt: bool = False) -> KernelHandle:
    """Launch kernelspec `name` on fresh 127.0.0.1 ports; return once it answers kernel_info.

    With `server` (a URL or a RemoteServer) and `token`, start it on that Jupyter Server or
    Enterprise Gateway instead (see geokernel.client.remote); `cwd` is then server-relative.

    Raises KernelDiedError if it exits during start-up, KernelTimeoutError after
    `startup_timeout`; the process is killed and the connection file removed either way.
    """
    if server is not None:
        from .remote import RemoteServer  # lazy: local kernels need none of it
        srv = server if isinstance(server, RemoteServer) else RemoteServer(server, token)
        return srv.start_kernel(name, cwd=cwd, env=env, startup_timeout=startup_timeout,
                                request_timeout=request_timeout)
    spec = spec or get_kernelspec(name)
    if encrypt and "curve" not in (spec.metadata or {}).get("supported_encryption", ()):
        raise ValueError(f"kernelspec {spec.name!r} does not declare supported_encryption ['curve']")
    info = new_connection_info(spec.name, encrypt=encrypt)
    path = write_connection_file(info)
    handle = KernelHandle(info, path, spec=spec, owns_file=True, cwd=cwd, env=env,
                          request_timeout=request_timeout)
    try:
        handle._launch()
        handle.wait_ready(startup_timeout)
    except BaseException:
        handle.shutdown(timeout=1.0)
        raise
    return handle


def connect(connection_file: str, timeout: float = 60.0,
            request_timeout: float = 60.0, server=None, token: str | None = None) -> KernelHandle:
    """Attach to a running kernel; shutdown() will not delete its connection file.

    With `server` (a URL or a RemoteServer), `connection_file` is the server's kernel id.
    """
    if server is not None:
        from .remote import RemoteServer
        srv = server if isinstance(server, RemoteServer) else RemoteServer(server, token)
        return srv.connect(connection_file, timeout=timeout, request_timeout=request_timeout)
    info = read_connection_file(connection_file)
    spec = None
    if info.kernel_name:
        try:
            spec = get_kernelspec(info.kernel_name)
        except NoSuchKernelError:
            log.info("kernelspec %r not installed; interrupts use messages", info.kernel_name)
    handle = KernelHandle(info, connection_file, spec=spec, request_timeout=request_timeout)
    try:
        handle.wait_ready(timeout)
    except BaseException:
        handle.close()
        raise
    return handle
