"""IPythonInterpreter: execute, complete, inspect, is_complete and history through IPython."""
from __future__ import annotations

import builtins
import getpass

import gevent
from IPython.core.error import StdinNotImplementedError

try:
    from IPython.core.history import HistoryOutput
except ImportError:  # IPython < 9 keeps no cell output in history
    HistoryOutput = None

from .. import context
from ..interpreter import Interpreter
from . import info
from .shell import KernelShell, run_async_cell

class IPythonInterpreter(Interpreter):
    def __init__(self, publisher, request_input=None, kernel=None, profile=None):
        super().__init__(publisher, request_input)
        # profile: a geokernel.ipython.profile.KernelProfile (its config and folder)
        extra = {} if profile is None else {"config": profile.config,
                                            "profile_dir": profile.profile_dir}
        self.shell = KernelShell.instance(output=self, kernel=kernel, **extra)
        self.shell.loop_runner = run_async_cell
        from ..aioloop import install_on_import as install_asyncio_loop
        from ..process import install_fork_policy

        install_asyncio_loop(publisher, kernel)  # one loop for the kernel's life, once asyncio loads
        self._attach_thread_api()
        if getattr(kernel, "subshells", None) is not None:
            from .subshell_magic import register as register_subshell_magic

            register_subshell_magic(self.shell, kernel)
        install_fork_policy(kernel, publisher, getattr(kernel, "ports", None))  # forked children
        # repeating + again() + stop in the callback = a one-shot that can be re-armed (libev
        # fires a re-started one-shot timer at once: that was a SQLite commit after every cell)
        self._history_timer = gevent.get_hub().loop.timer(1.0, 1.0)
        # request msg_id -> execution count whose stream output goes into history (cells of
        # the main shell and of subshells may run interleaved)
        self._recording: dict = {}
        self._input_depth = 0  # cells running with builtins.input replaced
        if HistoryOutput is not None:
            publisher.on_stream = self._record_stream

    @staticmethod
    def _attach_thread_api() -> None:
        import sys

        from .. import threads

        policy = threads.policy()
        for stream in (sys.stdout, sys.stderr):
            if policy is not None and getattr(stream, "_thread_parent", None) is policy:
                policy.attach(stream)  # sys.stdout.set_thread_parent(...) as on ipykernel

    @property
    def execution_count(self) -> int:
        return self.shell.execution_count

    def kernel_info(self) -> dict:
        return info.kernel_info()

    # ---- execute -------------------------------------------------------------------------
    def do_execute(self, code, silent, store_history, user_expressions, allow_stdin,
                   cell_id=None, cell_meta=None) -> dict:
        shell = self.shell
        self.last_error = None
        # input() asks the client of the request that calls it (see _ask); replaced while any
        # cell runs (cells of two shells may end in any order, so no save/restore per cell)
        if self._input_depth == 0:
            self._saved_input = builtins.input, getpass.getpass
            builtins.input, getpass.getpass = self._input, self._getpass
        self._input_depth += 1
        msg_id = context.current().msg_id
        if store_history:
            self._recording[msg_id] = shell.execution_count
        shell.displayhook_error = False
        try:
            kw = {"cell_id": cell_id} if cell_id is not None else {}
            if cell_meta is not None and _run_cell_takes_meta(shell):
                kw["cell_meta"] = cell_meta  # the request's metadata, as ipykernel passes it
            result = shell.run_cell(code, store_history=store_history, silent=silent, **kw)
        finally:
            self._input_depth -= 1
            if self._input_depth == 0:
                builtins.input, getpass.getpass = self._saved_input
        failed = result.error_before_exec or result.error_in_exec
        if failed is None and shell.displayhook_error and self.last_error is not None:
            reply = {"status": "error", **self.last_error}  # a formatter of Out[n] raised
        elif failed is not None:
            err = self.last_error or {"ename": type(failed).__name__, "evalue": str(failed),
                                      "traceback": []}
            reply = {"status": "error", **err}
        else:
            reply = {"status": "ok"}
        reply["execution_count"] = shell.execution_count - 1
        reply["user_expressions"] = (shell.user_expressions(user_expressions)
                                     if reply["status"] == "ok" else {})
        reply["payload"] = shell.payload_manager.read_payload()
        shell.payload_manager.clear_payload()
        self.last_error = None
        return reply

    def _record_stream(self, name: str, text: str, parent: dict | None = None) -> None:
        """What IPython's own stream tee keeps per cell (history_manager.outputs, used by
        %notebook), one entry per published message instead of per write."""
        count = self._recording.get((parent or {}).get("msg_id")) if self._recording else None
        if count is None:
            return
        kind = "out_stream" if name == "stdout" else "err_stream"
        outputs = self.shell.history_manager.outputs[count]
        if outputs and outputs[-1].output_type == kind:
            outputs[-1].bundle["stream"].append(text)
        else:
            outputs.append(HistoryOutput(output_type=kind, bundle={"stream": [text]}))

    def after_execute(self) -> None:
        # the kernel flushed the cell's last output before its reply: recording ends here
        self._recording.pop(context.current().msg_id, None)
        # persist history without a thread: one SQLite commit (~1 ms) per second of activity
        # at most, armed by the first cell after a commit (no wake-ups while idle); shutdown
        # writes the rest
        if not self._history_timer.active:
            self._history_timer.again(self._write_history)

    def _write_history(self) -> None:
        self._history_timer.stop()
        self.shell.history_manager.writeout_cache()

    def shutdown(self) -> None:
        self._history_timer.stop()
        try:
            self.shell.history_manager.writeout_cache()
            self.shell.history_manager.end_session()
        except Exception:
            pass

    def _input(self, prompt=""):
        __tracebackhide__ = True  # noqa: F841
        return self._ask(str(prompt), False)

    def _getpass(self, prompt="Password: ", stream=None):
        __tracebackhide__ = True  # noqa: F841
        return self._ask(str(prompt), True)

    def _ask(self, prompt, password):
        __tracebackhide__ = True  # noqa: F841
        from ..kernel import StdinNotAllowed

        try:
            return self.request_input(prompt, password)
        except StdinNotAllowed:
            self._no_input()
        except KeyboardInterrupt:
            # a fresh exception: the traceback then stops here instead of listing (and having
            # IPython parse the source of) the kernel and gevent frames of the wait
            raise KeyboardInterrupt from None

    @staticmethod
    def _no_input(*args, **kwargs):
        raise StdinNotImplementedError(
            "raw_input was called, but this frontend does not support input requests.")

    # ---- introspection -------------------------------------------------------------------
    def do_complete(self, code, cursor_pos) -> dict:
        from IPython.core.completer import provisionalcompleter, rectify_completions

        if cursor_pos is None:
            cursor_pos = len(code)
        with provisionalcompleter():
            completions = list(rectify_completions(
                code, self.shell.Completer.completions(code, cursor_pos)))
        if completions:
            start, end = completions[0].start, completions[0].end
        else:
            start = end = cursor_pos
        types = [{"start": c.start, "end": c.end, "text": c.text, "type": c.type,
                  "signature": c.signature} for c in completions]
        return {"status": "ok", "matches": [c.text for c in completions], "cursor_start": start,
                "cursor_end": end, "metadata": {"_jupyter_types_experimental": types}}

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()) -> dict:
        from IPython.utils.tokenutil import token_at_cursor

        if cursor_pos is None:
            cursor_pos = len(code)
        name = token_at_cursor(code, cursor_pos)
        reply = {"status": "ok", "data": {}, "metadata": {}, "found": False}
        try:
            bundle = self.shell.object_inspect_mime(name, detail_level=detail_level,
                                                    omit_sections=omit_sections)
        except KeyError:
            return reply
        if not self.shell.enable_html_pager:
            bundle.pop("text/html", None)
        reply["data"].update(bundle)
        reply["found"] = True
        return reply

    def do_is_complete(self, code) -> dict:
        status, indent = self.shell.input_transformer_manager.check_complete(code)
        reply = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    def do_history(self, hist_access_type="tail", output=False, raw=True, session=0, start=0,
                   stop=None, n=None, pattern=None, unique=False, **_ignored) -> dict:
        hm = self.shell.history_manager
        if hist_access_type == "tail":
            hist = hm.get_tail(n if n is not None else 10, raw=raw, output=output, include_latest=True)
        elif hist_access_type == "range":
            hist = hm.get_range(session, start, stop, raw=raw, output=output)
        elif hist_access_type == "search":
            hist = hm.search(pattern or "*", raw=raw, output=output, n=n, unique=unique)
        else:
            hist = []
        # the current session comes back as 0 (or relative); clients expect absolute numbers
        current = hm.session_number
        rows = [[s + current if s <= 0 else s, line, entry] for s, line, entry in hist]
        return {"status": "ok", "history": rows}


_TAKES_META: dict = {}


def _run_cell_takes_meta(shell) -> bool:
    """IPython >= 9 gives run_cell's ExecutionInfo the cell's metadata (`cell_meta`)."""
    cls = type(shell)
    if cls not in _TAKES_META:
        import inspect

        _TAKES_META[cls] = "cell_meta" in inspect.signature(shell.run_cell).parameters
    return _TAKES_META[cls]
