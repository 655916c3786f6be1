"""The language-agnostic interface the dispatcher talks to, plus output helpers that publish
through an injected Publisher. Subclasses implement the do_* methods."""
from __future__ import annotations

from . import context


class Interpreter:
    def __init__(self, publisher, request_input=None):
        self.publisher = publisher
        self.request_input = request_input  # callable(prompt, password) -> str, from the kernel
        self._errors: dict = {}  # request msg_id -> the last error it published
        self.suppress_errors = False  # set while the kernel cleans up after an interrupt

    @property
    def last_error(self) -> dict | None:
        """The last error the calling request published (cells of several shells may run
        interleaved: each reads its own)."""
        return self._errors.get(context.current_parent().get("msg_id"))

    @last_error.setter
    def last_error(self, error: dict | None) -> None:
        key = context.current_parent().get("msg_id")
        if error is None:
            self._errors.pop(key, None)
            return
        if len(self._errors) > 64:  # errors outside any cell (comm handlers) are never read
            self._errors.clear()
        self._errors[key] = error

    # ---- what the dispatcher calls ---------------------------------------------------------
    @property
    def execution_count(self) -> int:
        raise NotImplementedError

    def kernel_info(self) -> dict:
        raise NotImplementedError

    def do_execute(self, code, silent, store_history, user_expressions, allow_stdin,
                   cell_id=None, cell_meta=None) -> dict:
        raise NotImplementedError

    def do_complete(self, code, cursor_pos) -> dict:
        return {"status": "ok", "matches": [], "cursor_start": cursor_pos,
                "cursor_end": cursor_pos, "metadata": {}}

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()) -> dict:
        return {"status": "ok", "found": False, "data": {}, "metadata": {}}

    def do_is_complete(self, code) -> dict:
        return {"status": "unknown"}

    def do_history(self, **request) -> dict:
        return {"status": "ok", "history": []}

    def after_execute(self) -> None:
        """Called after an execute_reply has been sent (cheap bookkeeping goes here)."""

    def shutdown(self) -> None:
        """Called once before the process exits."""

    # ---- output helpers ------------------------------------------------------------------
    def publish_execute_result(self, execution_count: int, data: dict, metadata: dict) -> None:
        self.publisher.publish("execute_result", {"execution_count": execution_count,
                                                  "data": data, "metadata": metadata})

    def publish_display(self, data: dict, metadata: dict, transient: dict, update: bool = False) -> None:
        msg_type = "update_display_data" if update else "display_data"
        self.publisher.publish(msg_type, {"data": data, "metadata": metadata, "transient": transient})

    def clear_output(self, wait: bool = False) -> None:
        self.publisher.publish("clear_output", {"wait": wait})

    def publish_error(self, ename: str, evalue: str, traceback: list) -> None:
        if self.suppress_errors:
            return
        self.last_error = {"ename": ename, "evalue": evalue, "traceback": traceback}
        self.publisher.publish("error", dict(self.last_error))
