"""IPython's display hook and display publisher, sending through the interpreter's output
helpers instead of printing."""
from __future__ import annotations

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher


class KernelDisplayHook(DisplayHook):
    """`Out[n]` values become execute_result messages (none when no format has data, as on
    ipykernel). `active` is true while the value is being formatted: a formatter that raises
    then shows its traceback and makes the cell's reply an error (ipykernel 7 does the same)."""

    active = False

    def start_displayhook(self):
        self._data, self._md = {}, {}
        self.active = True

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self._data, self._md = format_dict, md_dict or {}

    def finish_displayhook(self):
        self.active = False
        if self._data:
            self.shell.output.publish_execute_result(self.prompt_count, self._data, self._md)
        self._data, self._md = {}, {}


class KernelDisplayPublisher(DisplayPublisher):
    """display(), update_display and clear_output become iopub messages."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        self.shell.output.publish_display(data, metadata or {}, transient or {}, update)

    def clear_output(self, wait=False):
        self.shell.output.clear_output(wait)
