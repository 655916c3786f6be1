"""Exceptions raised by geokernel.client (all subclass ClientError)."""
from __future__ import annotations


class ClientError(Exception):
    """Base class for every error the client raises on purpose."""


class NoSuchKernelError(ClientError, LookupError):
    """No kernelspec with that name is installed."""


class KernelLaunchError(ClientError, OSError):
    """The kernel's argv could not be executed at all (e.g. missing executable)."""


class KernelDiedError(ClientError):
    """The kernel process exited while we were starting it or waiting on it."""

    def __init__(self, kernel_name: str, exit_code: int | None, during: str = ""):
        self.kernel_name = kernel_name
        self.exit_code = exit_code
        self.during = during
        where = f" during {during}" if during else ""
        super().__init__(f"kernel {kernel_name!r} died{where} (exit code {exit_code})")


class KernelTimeoutError(ClientError, TimeoutError):
    """A wait exceeded its timeout; the message names what we were waiting for."""

    def __init__(self, kernel_name: str, what: str, timeout: float | None):
        self.kernel_name = kernel_name
        self.what = what
        self.timeout = timeout
        super().__init__(f"timed out after {timeout}s waiting for {what} from kernel {kernel_name!r}")


class KernelClosedError(ClientError):
    """The handle was shut down or closed; no more requests can be made."""
