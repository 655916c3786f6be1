"""The JupyterLab visual debugger over the control channel (debug_request/debug_reply) and
iopub (debug_event), in the kernel's one thread.

Module map: session.py (the DAP commands), dap_client.py (DAP over a gevent socket to pydevd),
pump.py (the hub keeps running while a cell is stopped), cell_files.py (murmur2 cell names,
the IPython compiler), variables.py (variable explorer without a stop, rich MIME bundles).
Importing this package costs nothing: the session and debugpy load on the first request.
"""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("geokernel.debugger")


class DebugRequestHandler:
    """The control-channel handler for debug_request; builds the session on first use."""

    def __init__(self, kernel, interp, publisher, tick=None):
        self._kernel, self._interp, self._publisher, self._tick = kernel, interp, publisher, tick
        # the kernel's own modules, never traced (a snapshot before any cell runs)
        self._startup_modules = frozenset(sys.modules)
        self.session = None

    def __call__(self, msg, channel: str) -> None:
        if self.session is None:
            from .session import DebugSession

            self.session = DebugSession(self._kernel, self._interp.shell, self._publisher,
                                        self._tick, self._startup_modules)
        self._kernel.reply(channel, msg, self.session.handle(msg.content))

    def close(self) -> None:
        """At kernel exit: remove the cell files the session dumped (nothing if never used)."""
        if self.session is not None:
            from .cell_files import remove_tmp_dir

            remove_tmp_dir()


def install_debugger(kernel, interp, publisher, tick=None) -> DebugRequestHandler:
    handler = DebugRequestHandler(kernel, interp, publisher, tick)
    kernel.control_handlers["debug_request"] = handler  # advertised by ipython/info.py
    return handler
