"""%subshell: which subshell runs this cell and which subshells exist (ipykernel 7's magic,
which JupyterLab's documentation points users to)."""
from __future__ import annotations

import os
import threading

from .. import context


def register(shell, kernel) -> None:
    def subshell(line: str = "") -> None:
        """Print this cell's subshell id (None: the main shell), the thread facts ipykernel
        prints (one thread here: subshells are greenlets) and the subshell list."""
        print(f"subshell id: {context.current().subshell_id}")
        print(f"thread id: {threading.get_ident()}")
        print(f"main thread id: {threading.main_thread().ident}")
        print(f"pid: {os.getpid()}")
        print(f"thread count: {threading.active_count()}")
        print(f"subshell list: {kernel.subshells.ids()}")

    shell.register_magic_function(subshell, "line", "subshell")
