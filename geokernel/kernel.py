"""The dispatcher: handler tables for shell and control, one queue and worker greenlet per shell
(the main shell and kernel subshells, geokernel/subshells.py), busy/idle bracketing, reply
routing, the abort queue after errors, stdin round trips. Each shell request runs with its own
request context (geokernel/context.py), the parent of all it publishes. No zmq here: it talks
to a `send` callable."""
from __future__ import annotations

import logging

import gevent
import gevent.event
from gevent.event import AsyncResult

from . import __version__, context
from .context import RequestContext
from .message import PROTOCOL_VERSION, Message, error_content, make_header, reply_type, utcnow_iso
from .subshells import Shell, Subshells, TooManySubshells, UnknownSubshellError

log = logging.getLogger("geokernel.kernel")


class StdinNotAllowed(Exception):
    """The request that is running did not allow stdin."""


class Kernel:
    def __init__(self, session: str, interpreter, send, publisher, ports: dict | None = None, *,
                 load_interpreter=None, static_kernel_info=None, on_shutdown=None,
                 connection_file: str | None = None):
        """interpreter: an Interpreter, or None to load one on first need with
        `load_interpreter(kernel)` (IPython costs ~100 ms of start-up); static_kernel_info:
        callable() -> the kernel_info fields known before loading; send: callable(channel,
        Message), the transport's; on_shutdown: callable(restart: bool); connection_file: for
        %connect_info and %qtconsole."""
        self.session = session
        self._interp = interpreter
        self.load_interpreter = (lambda: load_interpreter(self)) if load_interpreter else None
        self.static_kernel_info = static_kernel_info
        self.answered_kernel_info = gevent.event.Event()
        self._send = send
        self.publisher = publisher
        self.ports = ports or {}
        self.on_shutdown = on_shutdown
        self.connection_file = connection_file
        self.on_interrupt = None  # the tick registers how to interrupt the running cell
        # objects with cell_started()/cell_finished(): called when the first cell starts and
        # the last one ends (the tick, fd capture, asyncio); hooks with `per_cell = True` are
        # called for every cell, in the cell's greenlet (the debugger's per-greenlet tracing)
        self.cell_hooks: list = []
        # the main shell: shell requests that came on control run on its worker too (never
        # beside a parked cell) but ahead of its queue
        self.main_shell = Shell(None, self._run_request)
        # comm messages on the main shell while its cell runs (frontends without subshells),
        # handled beside the cell, in arrival order, at its next safe point (started on need)
        self.main_comms = Shell(None, self._run_beside)
        self.subshells = Subshells(self.main_shell, self._run_request)
        self._cells: dict = {}  # greenlet -> RequestContext of the execute requests running now
        # greenlet -> RequestContext of requests running user code now (cells, comm handlers):
        # the tick may switch away from these greenlets (geokernel/interrupts.py)
        self.running: dict = {}
        # comm messages run handlers of user code (widgets' observers): tickable while a cell runs
        self.user_handler_types = {"comm_open", "comm_msg", "comm_close"}
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
            "create_subshell_request": self.create_subshell_request,
            "delete_subshell_request": self.delete_subshell_request,
            "list_subshell_request": self.list_subshell_request,
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
        """The request the caller works for, as ipykernel exposes it (the Output widget reads
        it): the request context of the calling greenlet."""
        return {"header": context.current_parent()}

    # ---- state the tick, the cooperative yield and forked children read -------------------
    @property
    def worker(self):
        """The main shell's worker greenlet."""
        return self.main_shell.worker

    @worker.setter
    def worker(self, greenlet) -> None:
        self.main_shell.worker = greenlet

    @property
    def executing(self) -> bool:
        """A cell runs now, on any shell."""
        return bool(self._cells)

    @executing.setter
    def executing(self, value: bool) -> None:
        if not value:  # a forked child: nothing of the parent's runs here
            self._cells.clear()
            self.running.clear()

    def interrupt_target(self):
        """The greenlet an interrupt stops: the main shell's cell, else the subshell cell
        started last (ipykernel cannot interrupt subshells; a greenlet can be)."""
        main = self.main_shell.worker
        if main is not None and main in self._cells:
            return main
        return next(reversed(self._cells), None)

    # ---- entry points from the transport --------------------------------------------------
    def start(self) -> None:
        self.main_shell.start()

    def on_shell(self, msg: Message) -> None:
        try:
            shell = self.subshells.get(msg.header.get("subshell_id"))
        except UnknownSubshellError as e:
            self._refuse(msg, "shell", e)
            return
        if shell is self.main_shell and msg.msg_type in self.user_handler_types and (
                self.main_shell.worker in self._cells or self.main_comms.pending()):
            # as ipykernel 7.4 does for a main-shell comm message while a request runs (there
            # only at the cell's awaits; here at its next safe point, so a sync loop sees it too)
            if self.main_comms.worker is None:
                self.main_comms.start()
            self.main_comms.put("shell", msg)
            return
        shell.put("shell", msg)

    def _refuse(self, msg: Message, channel: str, err: Exception) -> None:
        """A request for a subshell that is not there: busy, an error reply, idle (a client
        tracks a request without a reply, e.g. comm_msg, by its idle status)."""
        log.warning("cannot handle %s %s: %s", msg.msg_type, msg.msg_id, err)
        self.publish_status("busy", msg)
        if msg.msg_type.endswith("_request"):
            self.reply(channel, msg, error_content(type(err).__name__, str(err)),
                       {"status": "error"})
        self.publish_status("idle", msg)

    def on_control(self, msg: Message) -> None:
        """Control is shell on its own socket (messaging spec): its own requests are answered
        here at once; shell requests (execute, complete, comm...) go to the worker first."""
        if msg.msg_type not in self.control_handlers:
            if self._interp is None and self.load_interpreter is not None:
                self.interp  # registers the handlers of comms and the debugger
            if msg.msg_type in self.shell_handlers and msg.msg_type not in self.control_handlers:
                self.main_shell.put("control", msg, priority=0)
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
    def _run_request(self, channel: str, msg: Message, shell: Shell) -> None:
        """A shell's worker: one request, in that shell's greenlet."""
        self.dispatch(msg, channel, self.shell_handlers, shell)

    def _run_beside(self, channel: str, msg: Message, shell: Shell) -> None:
        # no busy/idle, as on ipykernel: a frontend would show the kernel idle while the
        # main cell still runs
        self.dispatch(msg, channel, self.shell_handlers, shell, status=False)

    def dispatch(self, msg: Message, channel: str, table: dict, shell: Shell | None = None,
                 status: bool = True) -> None:
        handler = table.get(msg.msg_type)
        if handler is None and self._interp is None and self.load_interpreter is not None:
            self.interp  # some handlers (the debugger's) are registered when it loads
            handler = table.get(msg.msg_type)
        if status:
            self.publish_status("busy", msg)
        me = gevent.getcurrent()
        tickable = False
        try:
            if shell is not None:  # outputs belong to this request, in this greenlet
                ctx = RequestContext(msg, channel)
                context.activate(ctx)
                if msg.msg_type in self.user_handler_types:
                    tickable = True
                    self.running[me] = ctx
            if handler is not None:
                if shell is not None and msg.msg_type == "execute_request":
                    handler(msg, channel, shell)
                else:
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
            if tickable:
                self.running.pop(me, None)
            self.publisher.flush_streams()
            if status:
                self.publish_status("idle", msg)

    def publish_status(self, state: str, parent: Message) -> None:
        self.publisher.publish("status", {"execution_state": state}, parent_header=parent.header)

    def reply(self, channel: str, request: Message, content: dict, metadata: dict | None = None) -> None:
        header = make_header(reply_type(request.msg_type), self.session)
        self._send(channel, Message(header, request.header, metadata or {}, content,
                                    identities=request.identities))

    # ---- shell handlers ------------------------------------------------------------------
    def execute_request(self, msg: Message, channel: str, shell: Shell | None = None) -> None:
        c = msg.content
        shell = shell or self.main_shell
        if shell.aborting:
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
        ctx = context.current()
        ctx.allow_stdin = bool(c.get("allow_stdin", True))
        self._cell_started(ctx)
        try:
            reply = self.interp.do_execute(
                code, silent=silent, store_history=store_history,
                user_expressions=c.get("user_expressions") or {},
                allow_stdin=ctx.allow_stdin, cell_id=msg.metadata.get("cellId"),
                cell_meta=msg.metadata)
        finally:
            self._cell_finished()
        self.publisher.flush_streams()
        md = {"started": started, "dependencies_met": True, "engine": self.session,
              "status": reply["status"]}
        if reply["status"] == "error" and c.get("stop_on_error", True):
            # abort what was sent before this reply (not what a client sends after seeing it):
            # let the shell greenlet pull in everything already waiting, then reply
            gevent.idle()
            shell.aborting = True
        self.reply(channel, msg, reply, md)
        self.interp.after_execute()

    def _cell_started(self, ctx: RequestContext) -> None:
        me = gevent.getcurrent()
        first = not self._cells
        self._cells[me] = ctx
        self.running[me] = ctx
        for hook in self.cell_hooks:
            if first or getattr(hook, "per_cell", False):
                hook.cell_started()

    def _cell_finished(self) -> None:
        me = gevent.getcurrent()
        self._cells.pop(me, None)
        self.running.pop(me, None)
        last = not self._cells
        for hook in reversed(self.cell_hooks):
            if last or getattr(hook, "per_cell", False):
                hook.cell_finished()

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

    def create_subshell_request(self, msg, channel):
        try:
            subshell_id = self.subshells.create()
        except TooManySubshells as e:
            self.reply(channel, msg, error_content(type(e).__name__, str(e)))
            return
        self.reply(channel, msg, {"status": "ok", "subshell_id": subshell_id})

    def delete_subshell_request(self, msg, channel):
        subshell_id = msg.content.get("subshell_id")
        if not isinstance(subshell_id, str):
            self.reply(channel, msg, error_content(
                "ValueError", "delete_subshell_request needs a subshell_id (a string)"))
            return
        try:
            self.subshells.delete(subshell_id)
        except UnknownSubshellError as e:
            self.reply(channel, msg, error_content(type(e).__name__, str(e)))
            return
        self.reply(channel, msg, {"status": "ok"})

    def list_subshell_request(self, msg, channel):
        self.reply(channel, msg, {"status": "ok", "subshell_id": self.subshells.ids()})

    def interrupt_request(self, msg, channel):
        self.interrupt()
        self.reply(channel, msg, {"status": "ok"})

    def usage_request(self, msg, channel):
        from .usage import usage_content  # psutil loads only when the usage panel asks

        known = self.__dict__.setdefault("_usage_procs", {})
        self.reply(channel, msg, usage_content(known))

    # ---- interrupts and stdin ------------------------------------------------------------
    def interrupt(self) -> None:
        """Raise KeyboardInterrupt in the running cell; harmless while idle."""
        if self.on_interrupt is not None:
            self.on_interrupt()
            return
        target = self.interrupt_target()
        if target is not None and gevent.getcurrent() is not target:
            gevent.get_hub().loop.run_callback(self.throw_into, target)

    def throw_into(self, greenlet) -> None:
        # scheduled from the hub: throwing from another greenlet directly wedges it
        if greenlet is not None and greenlet in self._cells and not greenlet.dead:
            greenlet.throw(KeyboardInterrupt)

    def throw_into_worker(self) -> None:
        self.throw_into(self.interrupt_target())

    def request_input(self, prompt: str, password: bool = False) -> str:
        """Ask the client of the calling cell's request (its own request context: a subshell
        cell asks its own client)."""
        ctx = self.running.get(gevent.getcurrent()) or context.current()
        if ctx.msg is None or not ctx.allow_stdin:
            raise StdinNotAllowed("stdin is not allowed for this request")
        self.publisher.flush_streams()
        header = make_header("input_request", self.session)
        msg = Message(header, ctx.header, {}, {"prompt": prompt, "password": password},
                      identities=ctx.idents)
        waiter = AsyncResult()
        self._input_waiters[header["msg_id"]] = (ctx.idents, waiter)
        try:
            self._send("stdin", msg)
            value = waiter.get()
        finally:
            self._input_waiters.pop(header["msg_id"], None)
        if value == "\x04":
            raise EOFError("EOF from input_reply")
        return value
