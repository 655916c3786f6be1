"""gevent-native Jupyter client: discover kernelspecs, launch kernels, drive many at once.

    from geokernel.client import start_kernel
    with start_kernel("python3") as k:
        r = k.execute("print(1+1)")
        assert r.stdout == "2\\n"

Uses zmq.green and never monkey-patches; every wait has a timeout or notices kernel death.
"""
from .connection import ConnectionInfo, read_connection_file, write_connection_file
from .discovery import KernelSpecInfo, get_kernelspec, list_kernelspecs
from .errors import (ClientError, KernelClosedError, KernelDiedError, KernelLaunchError,
                     KernelTimeoutError, NoSuchKernelError)
from .handle import KernelHandle
from .media import decode_image, richest
from .outputs import ExecuteError, ExecuteResult
from .start import connect, start_kernel


def __getattr__(name):  # the remote client is imported only when used
    if name in ("RemoteServer", "RemoteKernelHandle"):
        from . import remote
        return getattr(remote, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ClientError", "ConnectionInfo", "ExecuteError", "ExecuteResult", "KernelClosedError",
    "KernelDiedError", "KernelHandle", "KernelLaunchError", "KernelSpecInfo",
    "KernelTimeoutError", "NoSuchKernelError", "RemoteKernelHandle", "RemoteServer", "connect", "decode_image", "get_kernelspec",
    "list_kernelspecs", "read_connection_file", "richest", "start_kernel",
    "write_connection_file",
]
