"""DebugSession: the DAP commands of debug_request, answered here or relayed to pydevd.

pydevd runs in this process as its own DAP server (debugpy's in-process adapter mode: no adapter
subprocess); we connect to it from a greenlet (dap_client). Commands JupyterLab needs that
pydevd lacks (debugInfo, dumpCell, inspectVariables, richInspectVariables, copyToGlobals,
modules, source) are answered here; those needing no debugger work before `initialize`, so
debugpy is imported only when a frontend actually starts debugging.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import threading
from contextlib import nullcontext

import gevent

from .cell_files import FILE_SUFFIX, HASH_SEED, cell_file_name, ensure_tmp_dir, file_prefix
from .dap_client import DapConnection, DapError
from ..interrupts import UserCodeTimeout
from .pump import SuspendPump
from .variables import (VariableExplorer, accept_variable, parse_rich_result, rich_bundle,
                        rich_expression)

log = logging.getLogger("geokernel.debugger")

# never traced: a stop inside the hub's code would freeze the kernel; IPython and the libraries
# it renders tracebacks and completions with are the machinery around a cell (a "raised
# exceptions" stop inside IPython's traceback formatting helps nobody)
KERNEL_PACKAGES = ("geokernel", "gevent", "zmq", "greenlet", "IPython", "traitlets", "comm",
                   "stack_data", "executing", "asttokens", "pure_eval", "pygments", "jedi",
                   "parso", "prompt_toolkit", "matplotlib_inline")
REQUEST_TIMEOUT = 10.0
# reprs and formatters of user values run on the control greenlet, maybe beside a parked cell
USER_CODE_TIMEOUT = 5.0
# answered here but only meaningful with pydevd running (the rest work before `initialize`)
_NEEDS_DEBUGGER = frozenset({"attach", "setBreakpoints", "copyToGlobals"})


def response(request: dict, body: dict | None = None, success: bool = True,
             message: str | None = None) -> dict:
    reply = {"type": "response", "seq": 0, "request_seq": request.get("seq", 0),
             "success": success, "command": request.get("command", "")}
    if body is not None:
        reply["body"] = body
    if message is not None:
        reply["message"] = message
    return reply


def _own_connection(py_db, wait: float = 5.0) -> None:
    """Once pydevd accepted our connection (on its own thread): stop it accepting others (a
    local process must not take over the session) and turn off Nagle on its socket (pydevd
    writes header and body in two sends: with our delayed ACKs each response would wait 40 ms).
    """
    for _ in range(int(wait / 0.01)):
        sock = getattr(getattr(py_db, "reader", None), "sock", None)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener = getattr(py_db, "_waiting_for_connection_thread", None)
            if listener is not None:
                listener.do_kill_pydev_thread()  # closes the listening socket
            return
        gevent.sleep(0.01)
    log.warning("pydevd did not accept our connection in %.0f s", wait)


class DebugSession:
    per_cell = True  # its cell hooks run for every cell, main shell or subshell (see kernel.py)

    def __init__(self, kernel, shell, publisher, tick=None, startup_modules=frozenset()):
        self.kernel = kernel
        self.shell = shell
        self.publisher = publisher
        self.tick = tick
        self.startup_modules = startup_modules  # names loaded before any cell ran
        self.pump = SuspendPump(tick)
        self.py_db = None
        self.dap: DapConnection | None = None
        self._token = secrets.token_hex(32)
        self.started = False
        self.attached = False
        self._trace_worker_off = False  # the worker greenlet still has pydevd's trace function
        self.breakpoints: dict[str, list] = {}
        self.stopped_threads: set = set()
        self.explorer = VariableExplorer(shell.user_ns)
        self._removed_cleanup: dict = {}
        self._local = {
            "debugInfo": self.debug_info, "dumpCell": self.dump_cell,
            "inspectVariables": self.inspect_variables, "variables": self.variables,
            "richInspectVariables": self.rich_inspect_variables, "modules": self.modules,
            "source": self.source, "copyToGlobals": self.copy_to_globals,
            "attach": self.attach, "configurationDone": self.configuration_done,
            "setBreakpoints": self.set_breakpoints, "disconnect": self.disconnect,
        }

    # ---- entry point ---------------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        command = request.get("command", "")
        try:
            if command == "initialize" and not self.started:
                try:
                    self._start()
                except Exception as e:  # e.g. debugpy is not installed
                    log.exception("the debugger could not start")
                    return response(request, success=False, message=f"{type(e).__name__}: {e}")
            handler = self._local.get(command)
            if not self.started and (handler is None or command in _NEEDS_DEBUGGER):
                return response(request, success=False, message="the debugger is not started")
            return handler(request) if handler is not None else self.forward(request)
        except UserCodeTimeout as e:
            log.warning("debug request %s: %s", command, e)
            return response(request, success=False, message=str(e))
        except DapError as e:
            log.warning("debug request %s failed: %s", command, e)
            return response(request, success=False, message=str(e))

    def forward(self, request: dict, timeout: float = REQUEST_TIMEOUT) -> dict:
        reply = self.dap.request(request["command"], request.get("arguments"), timeout,
                                 base=request)
        reply["request_seq"] = request.get("seq", 0)  # the client's seq, not ours
        return reply

    # ---- lifecycle -----------------------------------------------------------------------
    def _start(self) -> None:
        ensure_tmp_dir()
        if self.py_db is None:
            import debugpy  # lazy: users who never debug never pay for it

            # pydevd as its own DAP server on a thread of its own (no adapter subprocess)
            host, port = debugpy.listen(("127.0.0.1", 0), in_process_debug_adapter=True)
            from pydevd import get_global_debugger  # importable once debugpy.server loaded

            self.py_db = get_global_debugger()
            # set before this thread yields: requests without the token are refused
            self.py_db.authentication.access_token = self._token
            self.dap = DapConnection(host, port, self._on_event, on_send=self.pump.wake)
            self.pump.install(self.py_db, busy=lambda: self.dap.busy)
            _own_connection(self.py_db)
            self.kernel.cell_hooks.append(self)
        else:
            self.py_db.patch_threads()
            self.py_db.enable_tracing()
        # pydevd logs a client out on every disconnect
        reply = self.dap.request("pydevdAuthorize", {"debugServerAccessToken": self._token},
                                 REQUEST_TIMEOUT)
        if not reply.get("success"):
            raise DapError(f"pydevd refused the session: {reply.get('message')}")
        self._keep_leading_empty_lines()
        self.started = True
        log.info("debugger started")

    def disconnect(self, request: dict) -> dict:
        reply = self.forward(request) if self.started else response(request)
        self.attached = self.started = False
        self.breakpoints.clear()
        self.stopped_threads.clear()
        if self.py_db is not None:
            # tracing costs on every call: a kernel after disconnect must be a normal kernel
            threading.settrace(None)
            self.py_db.disable_tracing()
            self._trace_worker_off = True  # the worker greenlet has its own flag (cell_started)
        self._restore_cleanup()
        log.info("debugger stopped")
        return reply

    # cell hooks, run in the worker greenlet: greenlets keep their own tracing flag, so the
    # trace function set from the control greenlet does not reach the cell by itself
    def cell_started(self) -> None:
        if self.attached:
            self.py_db.enable_tracing()
        elif self._trace_worker_off:
            self.py_db.disable_tracing()
            self._trace_worker_off = False

    def cell_finished(self) -> None:
        if self.attached:
            self.pump.forget_step()

    def _keep_leading_empty_lines(self) -> None:
        # IPython drops leading blank lines, which would shift every breakpoint of the cell
        from IPython.core.inputtransformer2 import leading_empty_lines

        transforms = self.shell.input_transformer_manager.cleanup_transforms
        if leading_empty_lines in transforms:
            index = transforms.index(leading_empty_lines)
            self._removed_cleanup[index] = transforms.pop(index)

    def _restore_cleanup(self) -> None:
        transforms = self.shell.input_transformer_manager.cleanup_transforms
        for index in sorted(self._removed_cleanup):
            transforms.insert(index, self._removed_cleanup.pop(index))

    # ---- events from pydevd (reader greenlet) --------------------------------------------
    def _on_event(self, event: dict) -> None:
        name, body = event.get("event"), event.get("body") or {}
        if name == "stopped" and "threadId" in body:
            self.stopped_threads.add(body["threadId"])
        elif name == "continued":
            if body.get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(body.get("threadId"))
        self.publisher.publish("debug_event", event)

    # ---- commands relayed with changes ---------------------------------------------------
    def attach(self, request: dict) -> dict:
        args = dict(request.get("arguments") or {})
        if "justMyCode" not in args:  # step into libraries, but never into the kernel
            args["debugOptions"] = sorted(set(args.get("debugOptions", [])) | {"DebugStdLib"})
        args["rules"] = list(args.get("rules", [])) + self._kernel_rules()
        reply = self.forward(dict(request, arguments=args))
        if reply.get("success"):
            self.attached = True
            # pydevd waits for configurationDone before it reports breakpoints as hit
            self.dap.request("configurationDone", None, REQUEST_TIMEOUT)
        return reply

    def _kernel_rules(self) -> list:
        rules = [{"module": name, "include": False} for name in KERNEL_PACKAGES]
        for name in self.startup_modules:
            path = getattr(sys.modules.get(name), "__file__", None)
            if path:
                rules.append({"path": path, "include": False})
        return rules

    def configuration_done(self, request: dict) -> dict:
        return response(request)  # already sent to pydevd right after attach

    def set_breakpoints(self, request: dict) -> dict:
        source = request["arguments"]["source"]["path"]
        reply = self.forward(request)
        if reply.get("success"):  # pydevd may move breakpoints: keep the lines it chose
            self.breakpoints[source] = [{"line": bp["line"]}
                                        for bp in reply["body"]["breakpoints"] if "line" in bp]
        return reply

    # ---- commands answered here ----------------------------------------------------------
    def debug_info(self, request: dict) -> dict:
        return response(request, {
            "isStarted": self.started, "hashMethod": "Murmur2", "hashSeed": HASH_SEED,
            "tmpFilePrefix": file_prefix(), "tmpFileSuffix": FILE_SUFFIX,
            "breakpoints": [{"source": s, "breakpoints": b} for s, b in self.breakpoints.items()],
            "stoppedThreads": sorted(self.stopped_threads), "richRendering": True,
            "exceptionPaths": ["Python Exceptions"], "copyToGlobals": True,
        })

    def dump_cell(self, request: dict) -> dict:
        code = request["arguments"]["code"]
        ensure_tmp_dir()
        path = cell_file_name(code)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        return response(request, {"sourcePath": path})

    def source(self, request: dict) -> dict:
        path = (request.get("arguments") or {}).get("source", {}).get("path", "")
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return response(request, {"content": f.read()})
        return response(request, {}, success=False, message="source unavailable")

    def _user_code(self):
        """Around reprs/formatters of user values (see ExecutionTick.user_code)."""
        if self.tick is None:
            return nullcontext()
        return self.tick.user_code(USER_CODE_TIMEOUT)

    def inspect_variables(self, request: dict) -> dict:
        with self._user_code():
            return response(request, {"variables": self.explorer.inspect()})

    def variables(self, request: dict) -> dict:
        if not self.stopped_threads:  # the global namespace, without a debugger stop
            ref = (request.get("arguments") or {}).get("variablesReference", 0)
            with self._user_code():
                return response(request, {"variables": self.explorer.children(ref)})
        reply = self.forward(request)
        if reply.get("success"):
            reply["body"]["variables"] = [v for v in reply["body"].get("variables", [])
                                          if accept_variable(v.get("name", ""))]
        return reply

    def rich_inspect_variables(self, request: dict) -> dict:
        args = request.get("arguments") or {}
        name = args.get("variableName", "")
        if not name.isidentifier():
            ok = name in ("special variables", "function variables")
            return response(request, {"data": {}, "metadata": {}}, success=ok)
        if not self.stopped_threads or not self.started:
            with self._user_code():
                return response(request, rich_bundle(self.shell, name))
        reply = self.dap.request("evaluate", {"expression": rich_expression(name),
                                              "frameId": args.get("frameId"),
                                              "context": "clipboard"}, REQUEST_TIMEOUT)
        if not reply.get("success"):
            return response(request, {"data": {}, "metadata": {}}, success=False,
                            message=reply.get("message"))
        return response(request, parse_rich_result(reply["body"]["result"]))

    def copy_to_globals(self, request: dict) -> dict:
        args = request.get("arguments") or {}
        dst, src = args.get("dstVariableName", ""), args.get("srcVariableName", "")
        if not (dst.isidentifier() and src.isidentifier()):
            return response(request, success=False,
                            message="dstVariableName and srcVariableName must be identifiers")
        reply = self.dap.request("setExpression", {
            "expression": f"globals()['{dst}']", "value": src,
            "frameId": args.get("srcFrameId")}, REQUEST_TIMEOUT)
        return response(request, reply.get("body"), reply.get("success", False),
                        reply.get("message"))

    def modules(self, request: dict) -> dict:
        args = request.get("arguments") or {}
        mods = list(sys.modules.values())
        start = int(args.get("startModule", 0))
        count = int(args.get("moduleCount", 0)) or len(mods)
        out = []
        for i, module in enumerate(mods[start:start + count], start):
            path = getattr(getattr(module, "__spec__", None), "origin", None)
            if path and path.endswith(".py"):
                out.append({"id": i, "name": module.__name__, "path": path})
        return response(request, {"modules": out, "totalModules": len(mods)})
