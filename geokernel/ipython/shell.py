"""The IPython shell subclass the kernel runs: output goes to iopub, pages and exits become
payloads, shell commands stream cooperatively, history has no thread."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from IPython.core import page
from IPython.core.interactiveshell import InteractiveShell, InteractiveShellABC
from traitlets import Any, Bool, Type, validate

from .. import threads
from ..debugger.cell_files import CellCompiler
from ..subprocesses import capture_command
from ..system_pty import run_on_pty
from .display import KernelDisplayHook, KernelDisplayPublisher
from .history import ThreadlessHistoryManager
from .kernel_api import KernelAPI


def _unlink_kernel_frames(tb) -> None:
    """Drop the kernel's own hidden frames (signal handlers, input waits) from a traceback
    before IPython formats it: hidden frames are still parsed and highlighted, which made
    every interrupt ~10 ms slower. Only geokernel frames marked __tracebackhide__ go."""
    prev = None
    while tb is not None:
        frame = tb.tb_frame
        if (frame.f_globals.get("__name__", "").startswith("geokernel")
                and frame.f_locals.get("__tracebackhide__") and prev is not None):
            prev.tb_next = tb.tb_next
        else:
            prev = tb
        tb = tb.tb_next


def run_async_cell(coro):
    """IPython's loop runner for cells with top-level await. An interrupt lands in asyncio's
    select (the cell's coroutine is suspended): cancel the cell's task and raise a fresh
    KeyboardInterrupt, so the traceback is short and the task is not left pending."""
    __tracebackhide__ = True  # noqa: F841
    import asyncio

    from IPython.core.async_helpers import get_asyncio_loop

    from ..aioloop import kernel_loop

    loop = kernel_loop() or get_asyncio_loop()
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except KeyboardInterrupt:
        task.cancel()
        output = InteractiveShell.instance().output
        output.suppress_errors = True  # the CancelledError is ours, not the user's
        try:
            loop.run_until_complete(task)
        except (asyncio.CancelledError, Exception, KeyboardInterrupt):
            pass
        finally:
            output.suppress_errors = False
        interrupt = KeyboardInterrupt()
        interrupt._geokernel_bare = True  # reported without frames (asyncio's are not the user's)
        raise interrupt from None


class KernelShell(InteractiveShell):
    # named as ipykernel's shell: rich (and others) detect a notebook frontend by this name
    displayhook_class = Type(KernelDisplayHook)
    display_pub_class = Type(KernelDisplayPublisher)
    compiler_class = Type(CellCompiler)  # cell file names the debugger can compute
    output = Any(None)  # the interpreter: publish_execute_result/publish_display/publish_error
    kernel = Any(None)  # what libraries look up as get_ipython().kernel (a KernelAPI)
    keepkernel_on_exit = Bool(False)
    _shown_error = None  # (exception, error content) of the last traceback published
    displayhook_error = False  # a traceback was shown while Out[n] was being formatted

    # a kernel has no terminal: no readline, no autoindent
    readline_use = Bool(False)
    autoindent = Bool(False)

    def __repr__(self) -> str:
        # honest about whose shell this is, whatever __module__ says (see the end of the file)
        return f"<geokernel.ipython.shell.ZMQInteractiveShell object at {id(self):#x}>"

    @validate("kernel")
    def _wrap_kernel(self, proposal):
        # the dispatcher behind ipykernel's kernel attributes (session, iopub_socket, ...)
        kernel = proposal["value"]
        if kernel is None or isinstance(kernel, KernelAPI):
            return kernel
        return KernelAPI(kernel, self)

    def init_instance_attrs(self):
        super().init_instance_attrs()
        # tqdm and others look for this config section to tell a kernel from a terminal
        if "IPKernelApp" not in self.config:
            self.config.IPKernelApp.geokernel = True

    def init_magics(self):
        super().init_magics()
        from .magics import KernelMagics

        self.register_magics(KernelMagics)  # ipykernel's %edit, %clear, %connect_info...

    def init_history(self):
        self.history_manager = ThreadlessHistoryManager(shell=self, parent=self)
        self.configurables.append(self.history_manager)

    def init_hooks(self):
        super().init_hooks()
        self.set_hook("show_in_pager", page.as_hook(self._page_payload), 99)

    def _page_payload(self, strng, start=0, screen_lines=0, pager_cmd=None):
        data = strng if isinstance(strng, dict) else {"text/plain": strng}
        self.payload_manager.write_payload({"source": "page", "data": data, "start": start})

    # ---- parents (ipykernel 7's API; the policy lives in geokernel/threads.py) ---------------
    def get_parent(self) -> dict:
        """The request the calling thread's outputs go to (ipywidgets' Output widget asks), as
        the full message dict ipykernel returns (header, content, metadata, msg_id...)."""
        policy = threads.policy()
        if policy is not None:
            header = policy.get_parent().get("header") or {}
            return self.kernel.parent_for(header) if self.kernel is not None else \
                policy.get_parent()
        return self.kernel.get_parent() if self.kernel is not None else {}

    def set_parent(self, parent: dict) -> None:
        if self.kernel is not None:
            self.kernel.remember_parent(parent)
        policy = threads.policy()
        if policy is not None:
            policy.set_parent(parent)
        elif parent and parent.get("header"):
            self.output.publisher.parent_header = parent["header"]

    @property
    def parent_header(self) -> dict:
        return self.get_parent()

    def set_thread_parent(self, parent):
        """Parent for the calling thread only; returns tokens for reset_thread_parent."""
        return threads.policy().set_thread_parent(parent)

    def reset_thread_parent(self, tokens) -> None:
        threads.policy().reset_thread_parent(tokens)

    def set_next_input(self, text, replace=False):
        self.payload_manager.write_payload(
            {"source": "set_next_input", "text": text, "replace": replace})

    def ask_exit(self):
        self.exit_now = not self.keepkernel_on_exit
        self.payload_manager.write_payload({"source": "ask_exit", "keepkernel": self.keepkernel_on_exit})

    @contextmanager
    def _tee(self, channel):
        # IPython 9 wraps sys.stdout/stderr.write around every cell to keep the cell's output
        # in history_manager.outputs (for %notebook): a Python call per write made print()
        # three times slower and kept every written string. The interpreter records each
        # published stream message there instead (see IPythonInterpreter._record_stream).
        yield

    def showtraceback(self, exc_tuple=None, *args, **kwargs):
        if self.output is not None and self.output.suppress_errors:
            return  # the kernel is cleaning up after an interrupt: nothing to show or format
        _, value, tb = exc_tuple if exc_tuple is not None else sys.exc_info()
        if getattr(value, "_geokernel_bare", False):
            kwargs["exception_only"] = True  # no frame of the cell is on this stack
        _unlink_kernel_frames(tb)
        return super().showtraceback(exc_tuple, *args, **kwargs)

    def _showtraceback(self, etype, evalue, stb):
        ename = etype.__name__ if etype else ""
        if getattr(self.displayhook, "active", False):
            self.displayhook_error = True  # a failing formatter fails the cell (see display.py)
        self._shown_error = (evalue, {"ename": ename, "evalue": str(evalue), "traceback": stb})
        self.output.publish_error(ename, str(evalue), stb)

    def _format_exception_for_storage(self, exception, *args, **kwargs):
        # IPython 9 formats every failed cell's traceback a second time to keep it in history:
        # keep what was shown instead, and format nothing for the CancelledError of an
        # interrupted await cell (its asyncio frames took ~200 ms to format)
        shown, self._shown_error = self._shown_error, None
        if shown is not None and shown[0] is exception:
            return dict(shown[1])
        if self.output is not None and self.output.suppress_errors:
            return {"ename": type(exception).__name__, "evalue": str(exception), "traceback": []}
        return super()._format_exception_for_storage(exception, *args, **kwargs)

    # the frontend draws these (comm-based matplotlib backends), and asyncio's loop always runs
    # (geokernel/aioloop.py): nothing to integrate, as on ipykernel
    _KERNEL_GUIS = (None, "inline", "nbagg", "webagg", "notebook", "ipympl", "widget", "asyncio")

    def enable_gui(self, gui=None):
        if gui not in self._KERNEL_GUIS:
            raise NotImplementedError(f"geokernel has no '{gui}' event-loop integration")
        self.active_eventloop = gui

    def system_piped(self, cmd):
        __tracebackhide__ = True  # noqa: F841
        if cmd.rstrip().endswith("&"):
            raise OSError("Background processes are not supported.")
        # on a pty, as ipykernel does (geokernel/system_pty.py); the status goes to _exit_code
        # rather than being returned (a returned value would be displayed as Out[n])
        exit_code = run_on_pty(self.var_expand(cmd, depth=1))
        self.user_ns["_exit_code"] = exit_code
        # (IPython >= 8.13 has the option; 8.12 never raises, as it never did there)
        if getattr(self, "system_raise_on_error", False) and exit_code != 0:
            from subprocess import CalledProcessError

            raise CalledProcessError(exit_code, cmd)

    system = system_piped

    def getoutput(self, cmd, split=True, depth=0):
        from IPython.utils.text import LSString, SList

        if cmd.rstrip().endswith("&"):
            raise OSError("Background processes are not supported.")
        out = capture_command(self.var_expand(cmd, depth=depth + 1))
        return SList(out.splitlines()) if split else LSString(out)


# Named as ipykernel's shell, module included: libraries tell a notebook frontend from a terminal
# by these (rich and pandas by the name; plotly's default renderer also wants the module to
# start with "ipykernel.", else it adds ~4 MB of plotly.js HTML to the first figure). The module
# is not in sys.modules: inspect and jedi find nothing for the class (no import is attempted).
KernelShell.__name__ = KernelShell.__qualname__ = "ZMQInteractiveShell"
KernelShell.__module__ = "ipykernel.zmqshell"
InteractiveShellABC.register(KernelShell)
