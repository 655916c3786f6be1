"""The dispatcher: handler tables for shell and control, busy/idle bracketing, reply routing,
the abort queue after errors, stdin round trips. No zmq here: it talks to a `send` callable."""
from __future__ import annotations

import itertools
import logging
import os
import socket

import gevent
import gevent.event
from gevent.event import AsyncResult
from gevent.queue import PriorityQueue

from . import __version__
from .message import PROTOCOL_VERSION, Message, error_content, make_header, reply_type, utcnow_iso

log = logging.getLogger("geokernel.kernel")


class StdinNotAllowed(Exception):
    """The request that is running did not allow stdin."""


class Kernel:
    def __init__(self, session: str, interpreter, send, publisher, ports: dict | None = None):
        self.session = session
        self._interp = interpreter
        # the interpreter may be loaded on first need (IPython costs ~100 ms of start-up):
        self.load_interpreter = None  # callable() -> interpreter
        self.static_kernel_info = None  # callable() -> kernel_info fields, before loading
        self.answered_kernel_info = gevent.event.Event()
        self._send = send
        self.publisher = publisher
        self.ports = ports or {}
        self.on_shutdown = None  # set by cli: callable(restart: bool)
        self.on_interrupt = None  # set by cli: how to interrupt the running cell
        self.cell_hooks: list = []  # objects with cell_started()/cell_finished() (tick, fd capture)
        # (priority, arrival, channel, message): shell requests that came on control run
        # on the worker too (never beside a parked cell) but ahead of the shell queue
        self._queue: PriorityQueue = PriorityQueue()
        self._arrival = itertools.count()
        self._aborting = False
        self.executing = False
        self.worker = None
        self.current_request: Message | None = None  # the shell request being handled
        self._stdin_request: Message | None = None
        self._allow_stdin = False
        self._input_waiters: dict = {}
        self.shell_handlers = {
            "execute_request": self.execute_request,
            "kernel_info_request": self.kernel_info_request,
            "complete_request": self.complete_request,
            "inspect_request": self.inspect_request,
            "is_complete_request": self.is_complete_request,
            "history_request": self.history_request,
            "comm_info_request": self.comm_info_request,
            "connect_request": self.connect_request,
            "shutdown_request": self.shutdown_request,
        }
        self.control_handlers = {
            "kernel_info_request": self.kernel_info_request,
            "shutdown_request": self.shutdown_request,
            "interrupt_request": self.interrupt_request,
            "usage_request": self.usage_request,
            "connect_request": self.connect_request,
        }
        if interpreter is not None:
            self.attach_interpreter(interpreter)

    def attach_interpreter(self, interpreter) -> None:
        self._interp = interpreter

    @property
    def interp(self):
        if self._interp is None:
            self._interp = self.load_interpreter()
        return self._interp

    @property
    def interpreter_loaded(self) -> bool:
        return self._interp is not None

    def get_parent(self, channel: str = "shell") -> dict:
        """The request being handled, as ipykernel exposes it (the Output widget reads it)."""
        return {"header": self.publisher.parent_header}

    # ---- entry points from the transport --------------------------------------------------
    def start(self) -> None:
        self.worker = gevent.spawn(self._shell_worker)

    def on_shell(self, msg: Message) -> None:
        self._queue.put((1, next(self._arrival), "shell", msg))

    def on_control(self, msg: Message) -> None:
        """Control is shell on its own socket (messaging spec): its own requests are answered
        here at once; shell requests (execute, complete, comm...) go to the worker first."""
        if msg.msg_type not in self.control_handlers:
            if self._interp is None and self.load_interpreter is not None:
                self.interp  # registers the handlers of comms and the debugger
            if msg.msg_type in self.shell_handlers and msg.msg_type not in self.control_handlers:
                self._queue.put((0, next(self._arrival), "control", msg))
                return
        self.dispatch(msg, "control", self.control_handlers)

    def on_stdin(self, msg: Message) -> None:
        if msg.msg_type != "input_reply":
            log.warning("unexpected %s on stdin, dropped", msg.msg_type)
            return
        entry = self._input_waiters.get(msg.parent_header.get("msg_id"))
        if entry is None:  # some clients reply without a parent header: match the asker
            entry = next((e for e in self._input_waiters.values() if e[0] == msg.identities), None)
        if entry is None:
            log.warning("input_reply for no pending input_request, dropped")
            return
        entry[1].set(msg.content.get("value", ""))

    # ---- dispatch ------------------------------------------------------------------------
    def _shell_worker(self) -> None:
        while True:
            if self._aborting and self._queue.empty():
                self._aborting = False
            _, _, channel, msg = self._queue.get()
            try:
                self.dispatch(msg, channel, self.shell_handlers)
            except BaseException:  # a late interrupt must never kill the worker
                log.exception("shell worker survived an exception")

    def dispatch(self, msg: Message, channel: str, table: dict) -> None:
        handler = table.get(msg.msg_type)
        if handler is None and self._interp is None and self.load_interpreter is not None:
            self.interp  # some handlers (the debugger's) are registered when it loads
            handler = table.get(msg.msg_type)
        self.publish_status("busy", msg)
        try:
            if table is self.shell_handlers:  # outputs belong to this request
                self.publisher.parent_header = msg.header
                self.current_request = msg  # its full message: get_ipython().kernel.get_parent()
            if handler is not None:
                handler(msg, channel)
            elif msg.msg_type.endswith("_request"):
                log.warning("unknown message type %s on %s", msg.msg_type, channel)
                self.reply(channel, msg, error_content(
                    "UnknownMessageType", f"unknown message type {msg.msg_type!r}"))
            else:
                log.warning("unknown message type %s on %s, ignored", msg.msg_type, channel)
        except Exception as e:
            log.exception("handler for %s failed", msg.msg_type)
            if msg.msg_type.endswith("_request"):
                self.reply(channel, msg, error_content(type(e).__name__, str(e)))
        finally:
            self.publisher.flush_streams()
            self.publish_status("idle", msg)

    def publish_status(self, state: str, parent: Message) -> None:
        self.publisher.publish("status", {"execution_state": state}, parent_header=parent.header)

    def reply(self, channel: str, request: Message, content: dict, metadata: dict | None = None) -> None:
        header = make_header(reply_type(request.msg_type), self.session)
        self._send(channel, Message(header, request.header, metadata or {}, content,
                                    identities=request.identities))

    # ---- shell handlers ------------------------------------------------------------------
    def execute_request(self, msg: Message, channel: str) -> None:
        c = msg.content
        if self._aborting:
            self.reply(channel, msg, {"status": "aborted", "execution_count": self.interp.execution_count},
                       {"status": "aborted", "engine": self.session})
            return
        code = c.get("code", "")
        silent = bool(c.get("silent", False))
        store_history = bool(c.get("store_history", not silent)) and not silent
        started = utcnow_iso()
        if not silent:
            self.publisher.publish("execute_input", {"code": code,
                                                     "execution_count": self.interp.execution_count})
        self._stdin_request = msg
        self._allow_stdin = bool(c.get("allow_stdin", True))
        self.executing = True
        for hook in self.cell_hooks:
            hook.cell_started()
        try:
            reply = self.interp.do_execute(
                code, silent=silent, store_history=store_history,
                user_expressions=c.get("user_expressions") or {},
                allow_stdin=self._allow_stdin, cell_id=msg.metadata.get("cellId"),
                cell_meta=msg.metadata)
        finally:
            self.executing = False
            for hook in reversed(self.cell_hooks):
                hook.cell_finished()
            self._stdin_request = None
        self.publisher.flush_streams()
        md = {"started": started, "dependencies_met": True, "engine": self.session,
              "status": reply["status"]}
        if reply["status"] == "error" and c.get("stop_on_error", True):
            # abort what was sent before this reply (not what a client sends after seeing it):
            # let the shell greenlet pull in everything already waiting, then reply
            gevent.idle()
            self._aborting = True
        self.reply(channel, msg, reply, md)
        self.interp.after_execute()

    def kernel_info_request(self, msg: Message, channel: str) -> None:
        content = {"status": "ok", "protocol_version": PROTOCOL_VERSION,
                   "implementation": "geokernel", "implementation_version": __version__}
        if self._interp is None and self.static_kernel_info is not None:
            content.update(self.static_kernel_info())  # answer without loading IPython
        else:
            content.update(self.interp.kernel_info())
        self.reply(channel, msg, content)
        self.answered_kernel_info.set()

    def complete_request(self, msg, channel):
        c = msg.content
        code = c.get("code", "")
        self.reply(channel, msg, self.interp.do_complete(code, c.get("cursor_pos", len(code))))

    def inspect_request(self, msg, channel):
        c = msg.content
        code = c.get("code", "")
        self.reply(channel, msg, self.interp.do_inspect(
            code, c.get("cursor_pos", len(code)), c.get("detail_level", 0),
            c.get("omit_sections", ())))

    def is_complete_request(self, msg, channel):
        self.reply(channel, msg, self.interp.do_is_complete(msg.content.get("code", "")))

    def history_request(self, msg, channel):
        self.reply(channel, msg, self.interp.do_history(**msg.content))

    def comm_info_request(self, msg, channel):  # replaced by the comm bridge when installed
        self.reply(channel, msg, {"status": "ok", "comms": {}})

    def connect_request(self, msg, channel):
        content = {f"{ch}_port": port for ch, port in self.ports.items()}
        content["status"] = "ok"
        self.reply(channel, msg, content)

    # ---- control handlers ----------------------------------------------------------------
    def shutdown_request(self, msg, channel):
        restart = bool(msg.content.get("restart", False))
        content = {"status": "ok", "restart": restart}
        self.reply(channel, msg, content)
        self.publisher.publish("shutdown_reply", content, parent_header=msg.header)
        if self.on_shutdown is not None:
            self.on_shutdown(restart)

    def interrupt_request(self, msg, channel):
        self.interrupt()
        self.reply(channel, msg, {"status": "ok"})

    def usage_request(self, msg, channel):
        import psutil  # lazy: only the resource-usage panel asks

        # one psutil.Process per pid across requests: cpu_percent measures since the previous
        # call on the same object (a new object always says 0)
        known = self.__dict__.setdefault("_usage_procs", {})
        me = known.get(os.getpid()) or psutil.Process()
        try:
            procs = [me, *me.children(recursive=True)]
        except psutil.Error:
            procs = [me]
        current = {}
        for p in procs:
            old = known.get(p.pid)
            current[p.pid] = old if old is not None and old == p else p  # == : same start time
        known.clear()
        known.update(current)
        cpu = mem = 0.0
        for p in current.values():
            try:
                cpu += p.cpu_percent(interval=None)
                full = p.memory_full_info()
                mem += getattr(full, "pss", full.rss)
            except psutil.Error:
                pass
        content = {"status": "ok", "hostname": socket.gethostname(), "pid": os.getpid(),
                   "kernel_cpu": cpu, "kernel_memory": mem, "cpu_count": psutil.cpu_count(logical=True),
                   "host_virtual_memory": dict(psutil.virtual_memory()._asdict())}
        host_cpu = psutil.cpu_percent(interval=None)
        if host_cpu:
            content["host_cpu_percent"] = host_cpu
        self.reply(channel, msg, content)

    # ---- interrupts and stdin ------------------------------------------------------------
    def interrupt(self) -> None:
        """Raise KeyboardInterrupt in the running cell; harmless while idle."""
        if self.on_interrupt is not None:
            self.on_interrupt()
        elif self.executing and self.worker is not None and gevent.getcurrent() is not self.worker:
            gevent.get_hub().loop.run_callback(self.throw_into_worker)

    def throw_into_worker(self) -> None:
        # scheduled from the hub: throwing from another greenlet directly wedges it
        if self.executing and self.worker is not None and not self.worker.dead:
            self.worker.throw(KeyboardInterrupt)

    def request_input(self, prompt: str, password: bool = False) -> str:
        request = self._stdin_request
        if request is None or not self._allow_stdin:
            raise StdinNotAllowed("stdin is not allowed for this request")
        self.publisher.flush_streams()
        header = make_header("input_request", self.session)
        msg = Message(header, request.header, {}, {"prompt": prompt, "password": password},
                      identities=request.identities)
        waiter = AsyncResult()
        self._input_waiters[header["msg_id"]] = (request.identities, waiter)
        try:
            self._send("stdin", msg)
            value = waiter.get()
        finally:
            self._input_waiters.pop(header["msg_id"], None)
        if value == "\x04":
            raise EOFError("EOF from input_reply")
        return value
