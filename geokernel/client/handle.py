"""KernelHandle: one running kernel driven from greenlets."""
from __future__ import annotations

import logging
import os
import signal
import time
from typing import Callable

import gevent
import gevent.queue
from gevent.subprocess import TimeoutExpired

from ..message import Message, new_id, reply_type
from .channels import DIED, Channels
from .comms import CommMixin
from .connection import ConnectionInfo
from .discovery import KernelSpecInfo
from .errors import ClientError, KernelClosedError, KernelDiedError, KernelLaunchError, KernelTimeoutError
from .launcher import kill_process, launch
from .outputs import ExecuteError, ExecuteResult, OutputCollector
from .shell_api import DEFAULT, ShellRequestsMixin

log = logging.getLogger(__name__)

RESEND_INTERVAL = 0.5  # start-up: re-send kernel_info_request this often until answered


class KernelHandle(ShellRequestsMixin, CommMixin):
    def __init__(self, info: ConnectionInfo, connection_file: str, *,
                 spec: KernelSpecInfo | None = None, owns_file: bool = False,
                 cwd: str | None = None, env: dict | None = None, request_timeout: float = 60.0):
        self.info = info
        self.connection_file = connection_file
        self.spec = spec
        self.kernel_name = spec.name if spec else (info.kernel_name or "<connected>")
        self.request_timeout = request_timeout
        self.session = new_id()
        self.channels = Channels(info, self.session)
        self.kernel_info_reply: dict = {}
        self.launched_at: float | None = None      # time.monotonic() of the last launch
        self.first_reply_at: float | None = None   # ... of the first kernel_info_reply after it
        self.closed = False
        self._owns_file = owns_file
        self._cwd, self._env = cwd, env
        self._displays: dict[str, list[dict]] = {}
        self._proc = None
        self._exit_code: int | None = None
        self._expect_exit = False
        self._watcher = None
        self._init_comms()

    def __repr__(self) -> str:
        return f"<KernelHandle {self.kernel_name} pid={self.pid}>"

    def __enter__(self) -> "KernelHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- process ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    @property
    def interrupt_mode(self) -> str:
        return self.spec.interrupt_mode if self.spec else "message"

    def _launch(self) -> None:
        launched_at = time.monotonic()  # before fork/exec: start-up includes spawning
        try:
            proc = launch(self.spec, self.connection_file, self._cwd, self._env)
        except OSError as e:
            raise KernelLaunchError(f"cannot launch kernel {self.kernel_name!r}: {e}") from e
        self.launched_at, self.first_reply_at = launched_at, None
        self._proc, self._exit_code = proc, None
        self._watcher = gevent.spawn(self._watch, proc)

    def _watch(self, proc) -> None:
        # gevent.subprocess waits cooperatively (SIGCHLD watcher): death is noticed at once.
        rc = proc.wait()
        if proc is not self._proc:
            return
        self._exit_code = rc
        if not self._expect_exit:
            log.warning("kernel %s (pid %s) exited with code %s", self.kernel_name, proc.pid, rc)
        self.channels.fail_all(rc)
        self._fail_comms(rc)

    def _check_alive(self, what: str) -> None:
        if self.closed:
            raise KernelClosedError(f"kernel {self.kernel_name!r} handle is closed ({what})")
        if self._exit_code is not None:
            raise KernelDiedError(self.kernel_name, self._exit_code, what)

    def _stop_process(self, grace: float) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout=max(grace, 0.01))
        except TimeoutExpired:
            log.warning("kernel %s did not exit in %.1fs; killing it", self.kernel_name, grace)
            kill_process(proc)
            proc.wait(timeout=5)
        self._exit_code = proc.returncode

    # -- waiting ------------------------------------------------------------------------
    def _timeout(self, timeout: float | None) -> float | None:
        return self.request_timeout if timeout is not None and timeout < 0 else timeout

    def _collect(self, queue, what: str, timeout: float | None,
                 handler: Callable[[str, Message], bool]) -> None:
        """Feed routed (channel, msg) items to handler until it returns True."""
        with gevent.Timeout(timeout, KernelTimeoutError(self.kernel_name, what, timeout)):
            while True:
                channel, msg = queue.get()
                if channel == DIED:
                    raise KernelDiedError(self.kernel_name, msg, what)
                if handler(channel, msg):
                    return

    def _run(self, channel: str, msg: Message, what: str, timeout, handler) -> None:
        queue = self.channels.register(msg.msg_id)
        try:
            self._check_alive(what)  # after register: a death from now on wakes our queue
            self.channels.send_msg(channel, msg)
            self._collect(queue, what, self._timeout(timeout), handler)
        finally:
            self.channels.unregister(msg.msg_id)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        """Re-send kernel_info_request until a reply AND an iopub message for one (or an
        iopub_welcome, JEP 65) arrive.

        The iopub message proves our SUB socket is connected, so the first execute's
        output cannot be lost to the slow-joiner problem.
        """
        what = "kernel_info_reply (start-up)"
        queue: gevent.queue.Queue = gevent.queue.Queue()
        ids: list[str] = []
        deadline = time.monotonic() + timeout
        got_reply = got_iopub = False

        def on_welcome(m):  # JEP 65: the kernel welcomes our subscription, so iopub is live
            if m.msg_type == "iopub_welcome":
                queue.put(("iopub", m))

        self.channels.add_listener(on_welcome)
        try:
            while True:
                msg = self.channels.build("kernel_info_request", {})
                ids.append(msg.msg_id)
                self.channels.register(msg.msg_id, queue)
                self._check_alive(what)
                self.channels.send_msg("shell", msg)
                resend_at = min(deadline, time.monotonic() + RESEND_INTERVAL)
                while (left := resend_at - time.monotonic()) > 0:
                    try:
                        channel, m = queue.get(timeout=left)
                    except gevent.queue.Empty:
                        break
                    if channel == DIED:
                        raise KernelDiedError(self.kernel_name, m, "start-up")
                    if channel == "shell" and m.msg_type == "kernel_info_reply" and not got_reply:
                        got_reply, self.kernel_info_reply = True, m.content
                        self.first_reply_at = time.monotonic()
                    elif channel == "iopub":
                        got_iopub = True
                    if got_reply and got_iopub:
                        return self.kernel_info_reply
                if time.monotonic() >= deadline:
                    raise KernelTimeoutError(self.kernel_name, what, timeout)
        finally:
            self.channels.remove_listener(on_welcome)
            for i in ids:
                self.channels.unregister(i)

    # -- requests -----------------------------------------------------------------------
    def request(self, channel: str, msg_type: str, content: dict | None = None,
                timeout: float | None = DEFAULT, *, metadata: dict | None = None,
                buffers: list | None = None, wait_idle: bool = False,
                on_iopub: Callable[[Message], None] | None = None) -> Message:
        """Send any request on shell/control and return its reply Message."""
        msg = self.channels.build(msg_type, content or {}, metadata=metadata, buffers=buffers)
        state: dict = {}

        def handler(ch: str, m: Message) -> bool:
            if ch == channel:
                state["reply"] = m
            elif ch == "iopub":
                if on_iopub is not None:
                    on_iopub(m)
                if m.msg_type == "status" and m.content.get("execution_state") == "idle":
                    state["idle"] = True
            return "reply" in state and (not wait_idle or "idle" in state)

        what = f"{reply_type(msg_type)} (to {msg_type} on {channel})"
        self._run(channel, msg, what, timeout, handler)
        return state["reply"]

    def execute(self, code: str, silent: bool = False, store_history: bool = True,
                user_expressions: dict | None = None, allow_stdin: bool | None = None,
                stop_on_error: bool = True,
                on_output: Callable[[Message], None] | None = None,
                on_input: Callable[[str, bool], str] | None = None,
                timeout: float | None = None) -> ExecuteResult:
        """Run code; done when both execute_reply and the idle status have arrived."""
        if allow_stdin is None:
            allow_stdin = on_input is not None
        msg = self.channels.build("execute_request", {
            "code": code, "silent": silent, "store_history": store_history,
            "user_expressions": user_expressions or {}, "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error})
        result = ExecuteResult(msg.msg_id)
        collector = OutputCollector(self._displays)
        state = {"reply": False, "idle": False}

        def handler(ch: str, m: Message) -> bool:
            if ch == "shell":
                state["reply"], result.reply = True, m.content
            elif ch == "iopub":
                if on_output is not None:
                    on_output(m)
                if m.msg_type == "status":
                    state["idle"] = state["idle"] or m.content.get("execution_state") == "idle"
                else:
                    collector.handle(m)
            elif ch == "stdin" and m.msg_type == "input_request":
                self._answer_input(m, on_input)
            return state["reply"] and state["idle"]

        first_line = code.strip().splitlines()[0][:40] if code.strip() else ""
        self._run("shell", msg, f"execute_reply+idle (to execute_request {first_line!r})",
                  timeout, handler)
        reply = result.reply
        result.status = reply.get("status", "")
        result.execution_count = reply.get("execution_count")
        result.outputs = collector.finish()
        if result.status == "error":
            result.error = ExecuteError(reply.get("ename", ""), reply.get("evalue", ""),
                                        list(reply.get("traceback", [])))
        return result

    def _answer_input(self, m: Message, on_input) -> None:
        value = ""
        if on_input is None:
            log.warning("input_request but no on_input callback; answering ''")
        else:
            try:
                value = on_input(m.content.get("prompt", ""), bool(m.content.get("password")))
            except Exception:  # the kernel would block forever without an answer
                log.exception("on_input failed; answering ''")
        self.channels.send("stdin", "input_reply", {"value": value}, parent=m.header)

    # -- lifecycle ----------------------------------------------------------------------
    def is_alive(self, timeout: float = 1.0) -> bool:
        """Heartbeat round trip (False if our process handle shows it exited)."""
        if self.closed or self._exit_code is not None:
            return False
        if self._proc is not None and self._proc.poll() is not None:
            return False
        return self.channels.ping(timeout)

    def interrupt(self, timeout: float | None = DEFAULT) -> None:
        if self.interrupt_mode == "signal" and self._proc is not None:
            self._check_alive("interrupt")
            os.kill(self._proc.pid, signal.SIGINT)
        else:
            self.request("control", "interrupt_request", {}, timeout)

    def restart(self, timeout: float = 60.0) -> dict:
        """shutdown_request(restart=True), wait for exit, relaunch, wait for kernel_info."""
        if self._proc is None or self.spec is None:
            raise ClientError("restart() needs a kernel launched by start_kernel()")
        self._check_alive("restart")
        self._expect_exit = True
        try:
            try:
                self.request("control", "shutdown_request", {"restart": True}, min(5.0, timeout))
            except (KernelTimeoutError, KernelDiedError):
                pass
            self._stop_process(grace=5.0)
        finally:
            self._expect_exit = False
        self.channels.reset_heartbeat()
        self._displays.clear()
        self._launch()
        return self.wait_ready(timeout)

    def shutdown(self, timeout: float = 5.0) -> int | None:
        """Ask the kernel to exit, kill it after `timeout`, close sockets, remove our file."""
        if self.closed:
            return self._exit_code
        deadline = time.monotonic() + timeout
        self._expect_exit = True
        if self._exit_code is None:
            try:
                self.request("control", "shutdown_request", {"restart": False}, timeout)
            except (KernelTimeoutError, KernelDiedError) as e:
                log.info("shutdown_request to %s: %s", self.kernel_name, e)
        self._stop_process(grace=deadline - time.monotonic())
        self.close()
        if self._owns_file:
            try:
                os.remove(self.connection_file)
            except OSError:
                pass
        return self._exit_code

    def close(self) -> None:
        """Close our sockets; a kernel we launched keeps running unless shutdown() was used."""
        if self.closed:
            return
        self.closed = True
        if self._watcher is not None:
            self._watcher.kill(block=False)
        self.channels.close()
