"""Kernels behind a Jupyter Server or Enterprise Gateway (same REST + websocket API).

    from geokernel.client import RemoteServer, start_kernel
    with start_kernel("geokernel", server="http://127.0.0.1:8888", token="T") as k:
        print(k.execute("1 + 1").result)
    srv = RemoteServer("http://127.0.0.1:8888", token="T")
    k = srv.start_kernel("python3")      # or srv.connect(kernel_id) to attach to a running one

A RemoteKernelHandle is a KernelHandle whose channels run over the websocket and whose
process control (interrupt, restart, shutdown) goes through the REST API.
"""
from __future__ import annotations

import logging
import time

import gevent

from ..message import new_id
from .errors import ClientError, KernelClosedError, KernelDiedError, KernelLaunchError, NoSuchKernelError
from .handle import KernelHandle
from .remote_channels import V1, RemoteChannels
from .remote_http import HTTPError, ServerURL, request
from .remote_ws import MAX_MESSAGE, WebSocket
from .shell_api import DEFAULT

log = logging.getLogger(__name__)


class RemoteServer:
    """A Jupyter Server / Enterprise Gateway at `url` (with its base URL), token auth.

    `http_timeout` bounds each REST call; `max_message` bounds one websocket message;
    `protocols` is what we offer for the websocket, preferred first ("" = legacy JSON only).
    """

    def __init__(self, url: str, token: str | None = None, http_timeout: float = 60.0,
                 max_message: int = MAX_MESSAGE, protocols: tuple = (V1,)):
        self.url = ServerURL(url)
        self.token = token or None
        self.http_timeout = http_timeout
        self.max_message = max_message
        self.protocols = tuple(p for p in protocols if p)

    def __repr__(self) -> str:
        return f"<RemoteServer {self.url.url}>"

    def api(self, method: str, *path: str, body=None, timeout: float | None = None):
        return request(self.url, method, self.url.path("api", *path), self.token, body,
                       timeout or self.http_timeout)

    def status(self) -> dict:
        return self.api("GET", "status")

    def kernelspecs(self) -> dict:
        """{name: spec dict (argv, display_name, language, ...)} of the server's kernelspecs."""
        got = self.api("GET", "kernelspecs") or {}
        return {name: (s or {}).get("spec", {}) for name, s in got.get("kernelspecs", {}).items()}

    def list_kernels(self) -> list[dict]:
        return self.api("GET", "kernels") or []

    def start_kernel(self, name: str = "python3", cwd: str | None = None, env: dict | None = None,
                     startup_timeout: float = 60.0, request_timeout: float = 60.0
                     ) -> "RemoteKernelHandle":
        """POST /api/kernels, open the websocket, return once kernel_info is answered.

        `cwd` is the server-relative path; `env` is passed on (EG reads KERNEL_* from it).
        The kernel is deleted again if start-up fails.
        """
        body: dict = {"name": name}
        if cwd is not None:
            body["path"] = cwd
        if env:
            body["env"] = env
        launched_at = time.monotonic()
        try:
            model = self.api("POST", "kernels", body=body, timeout=max(startup_timeout, 1.0))
        except HTTPError as e:
            if e.status in (400, 404, 500) and name not in self._spec_names():
                raise NoSuchKernelError(f"no kernelspec {name!r} on {self.url.url}") from e
            raise KernelLaunchError(f"cannot start kernel {name!r} on {self.url.url}: {e}") from e
        handle = RemoteKernelHandle(self, model["id"], model.get("name", name),
                                    request_timeout=request_timeout)
        handle.launched_at = launched_at
        try:
            handle._open()
            handle.wait_ready(max(1.0, startup_timeout - (time.monotonic() - launched_at)))
        except BaseException:
            handle.shutdown(timeout=5.0)
            raise
        return handle

    def connect(self, kernel_id: str, timeout: float = 60.0,
                request_timeout: float = 60.0) -> "RemoteKernelHandle":
        """Attach to a running kernel; close() detaches, shutdown() deletes it."""
        model = self.api("GET", "kernels", kernel_id)
        handle = RemoteKernelHandle(self, kernel_id, model.get("name", ""),
                                    request_timeout=request_timeout)
        try:
            handle._open()
            handle.wait_ready(timeout)
        except BaseException:
            handle.close()
            raise
        return handle

    def _spec_names(self) -> set:
        try:
            return set(self.kernelspecs())
        except ClientError:
            return set()


class RemoteKernelHandle(KernelHandle):
    """KernelHandle over a server's websocket; pid is None (the process is the server's)."""

    remote = True

    def __init__(self, server: RemoteServer, kernel_id: str, kernel_name: str,
                 request_timeout: float = 60.0):
        # KernelHandle.__init__ would open ZMQ sockets from a connection file: not here.
        self.server = server
        self.kernel_id = kernel_id
        self.info = None
        self.connection_file = None
        self.spec = None
        self.kernel_name = kernel_name
        self.request_timeout = request_timeout
        self.session = new_id()
        self.channels = None
        self.kernel_info_reply = {}
        self.launched_at = self.first_reply_at = None
        self.closed = False
        self.lost: str | None = None  # why the websocket dropped, if it did
        self._owns_file = False
        self._displays = {}
        self._proc = None
        self._exit_code = None
        self._expect_exit = False
        self._watcher = None

    def __repr__(self) -> str:
        return f"<RemoteKernelHandle {self.kernel_name} {self.kernel_id} on {self.server.url.url}>"

    @property
    def interrupt_mode(self) -> str:
        return "rest"

    def _open(self) -> None:
        """(Re)open the websocket; iopub listeners (comms, the user's) carry over."""
        path = self.server.url.path("api", "kernels", self.kernel_id, "channels",
                                    query=f"session_id={self.session}")
        ws = WebSocket.connect(self.server.url, path, self.server.token, self.server.protocols,
                               timeout=self.server.http_timeout, max_message=self.server.max_message)
        old = self.channels
        channels = RemoteChannels(ws, self.session, on_lost=lambda why: self._on_lost(channels, why))
        self.channels = channels
        if old is None:
            self._init_comms()
            channels.add_listener(self._watch_iopub)
        else:
            channels._listeners = old._listeners
            old.close()
        self.lost = None
        log.debug("websocket to %s open (subprotocol %s)", self.kernel_id, ws.subprotocol)

    @property
    def subprotocol(self) -> str | None:
        return self.channels.ws.subprotocol if self.channels else None

    def _watch_iopub(self, msg) -> None:
        # The server keeps the websocket open after the kernel is deleted or dies for good:
        # its iopub shutdown_reply / "dead" status is all we get, so waiters fail at once.
        if msg.msg_type == "shutdown_reply" and not msg.content.get("restart"):
            why = "the kernel was shut down"
        elif msg.msg_type == "status" and msg.content.get("execution_state") == "dead":
            why = "the server reports the kernel dead"
        else:
            return
        if self.lost is None:
            log.info("kernel %s: %s", self.kernel_id, why)
            self.channels.fail_all(None)
            self._on_lost(self.channels, why)

    def _on_lost(self, channels: RemoteChannels, reason: str) -> None:
        if channels is not self.channels:  # an old connection we replaced
            return
        self.lost = reason
        self._fail_comms(None)

    def _check_alive(self, what: str) -> None:
        if self.closed:
            raise KernelClosedError(f"kernel {self.kernel_name!r} handle is closed ({what})")
        if self.lost is not None:
            raise KernelDiedError(self.kernel_name, None, f"{what}; {self.lost}")

    def model(self) -> dict:
        """The server's kernel model (id, name, execution_state, connections, ...)."""
        return self.server.api("GET", "kernels", self.kernel_id)

    def is_alive(self, timeout: float = 5.0) -> bool:
        if self.closed or self.lost is not None:
            return False
        try:
            return self.server.api("GET", "kernels", self.kernel_id, timeout=timeout) \
                .get("execution_state") != "dead"
        except ClientError:
            return False

    def interrupt(self, timeout: float | None = DEFAULT) -> None:
        """POST .../interrupt: the server interrupts per the kernelspec's interrupt_mode."""
        self._check_alive("interrupt")
        self.server.api("POST", "kernels", self.kernel_id, "interrupt",
                        timeout=self._timeout(timeout))

    def restart(self, timeout: float = 60.0) -> dict:
        """POST .../restart, reopen the websocket, wait for kernel_info."""
        self._check_alive("restart")
        t0 = time.monotonic()
        # the server drops our websocket while it restarts the kernel: close it first
        self.channels.close()
        self.server.api("POST", "kernels", self.kernel_id, "restart", timeout=timeout)
        self._displays.clear()
        self.launched_at, self.first_reply_at = t0, None
        self._open()
        return self.wait_ready(max(1.0, timeout - (time.monotonic() - t0)))

    def shutdown(self, timeout: float = 5.0) -> None:
        """DELETE the kernel on the server, then close the websocket."""
        if self.closed:
            return None
        try:
            self.server.api("DELETE", "kernels", self.kernel_id, timeout=max(timeout, 1.0) + 5)
        except HTTPError as e:
            if e.status != 404:  # 404: already gone
                log.warning("deleting kernel %s: %s", self.kernel_id, e)
        except (ClientError, OSError, gevent.Timeout) as e:
            log.warning("deleting kernel %s: %s", self.kernel_id, e)
        self.close()
        return None

    def close(self) -> None:
        """Close the websocket; the kernel keeps running on the server."""
        if self.closed:
            return
        self.closed = True
        if self.channels is not None:
            self.channels.close()
