"""Launching a kernel process from a kernelspec (cooperative gevent.subprocess)."""
from __future__ import annotations

import logging
import os
import re
import signal
import sys

from gevent import subprocess

from .discovery import KernelSpecInfo

log = logging.getLogger(__name__)

_PYTHONS = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}


def format_argv(spec: KernelSpecInfo, connection_file: str) -> list[str]:
    """Substitute {connection_file}, {resource_dir}, {prefix}; a bare python -> sys.executable."""
    ns = {"connection_file": connection_file, "resource_dir": spec.resource_dir,
          "prefix": sys.prefix}
    argv = [re.sub(r"\{([A-Za-z_]+)\}", lambda m: ns.get(m.group(1), m.group(0)), a)
            for a in spec.argv]
    if argv and argv[0] in _PYTHONS:
        # Same rule as jupyter_client: run the kernel with the interpreter driving it.
        argv[0] = sys.executable
    return argv


def launch(spec: KernelSpecInfo, connection_file: str, cwd: str | None = None,
           env: dict | None = None) -> subprocess.Popen:
    full_env = dict(os.environ if env is None else env)
    full_env.update(spec.env)
    full_env["JPY_PARENT_PID"] = str(os.getpid())
    argv = format_argv(spec, connection_file)
    log.debug("launching %s: %s", spec.name, argv)
    # Own session/process group: a Ctrl-C in our terminal must not reach the kernel, and
    # the kernel's process-group signals must not reach us.
    return subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def kill_process(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the kernel's whole process group (it may have children), then the pid."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        try:
            os.kill(proc.pid, sig)
        except OSError:
            pass
