"""Captured shell commands (`x = !cmd`, `!!cmd`, %sx) run with pipes read cooperatively, so the
hub keeps turning while the command runs (as ipykernel, which captures through pipes too; `!cmd`
alone runs on a pty: system_pty.py). The child gets its own process group so an
interrupt can stop the whole command; no gevent child watcher is used (libev would reap every
child, breaking os.system and subprocess in user code)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import gevent
import gevent.os


def _shell() -> str:
    return os.environ.get("SHELL") or "/bin/sh"


def _start(cmd: str, merge_stderr: bool):
    out_r, out_w = os.pipe()
    err_r, err_w = (None, None) if merge_stderr else os.pipe()
    try:
        proc = subprocess.Popen(cmd, shell=True, executable=_shell(), stdin=subprocess.DEVNULL,
                                stdout=out_w, stderr=out_w if merge_stderr else err_w,
                                start_new_session=True)
    finally:
        os.close(out_w)
        if err_w is not None:
            os.close(err_w)
    fds = [fd for fd in (out_r, err_r) if fd is not None]
    for fd in fds:
        gevent.os.make_nonblocking(fd)
    return proc, out_r, err_r


def _pump(fd: int, sink) -> None:
    try:
        while True:
            chunk = gevent.os.nb_read(fd, 65536)
            if not chunk:
                return
            sink(chunk)
    finally:
        os.close(fd)


def wait_cooperatively(proc) -> int:
    """Wait for a child without blocking the hub and without a SIGCHLD watcher (also used by
    system_pty.py)."""
    delay = 0.001
    while proc.poll() is None:
        gevent.sleep(delay)
        delay = min(delay * 2, 0.05)
    return proc.returncode


def _stop(proc) -> None:
    for sig, grace in ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            return
        with gevent.Timeout(grace, False):
            wait_cooperatively(proc)
            return


def _run(cmd: str, merge_stderr: bool, on_out, on_err):
    __tracebackhide__ = True  # noqa: F841
    proc, out_r, err_r = _start(cmd, merge_stderr)
    err_reader = gevent.spawn(_pump, err_r, on_err) if err_r is not None else None
    try:
        _pump(out_r, on_out)
        if err_reader is not None:
            err_reader.join()
        return wait_cooperatively(proc)
    except BaseException as e:  # interrupt or shutdown: stop the whole command, then re-raise
        if err_reader is not None:
            err_reader.kill(block=False)
        _stop(proc)
        if isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # without the gevent frames of the wait
        raise


def capture_command(cmd: str) -> str:
    """Run `cmd` and return its stdout and stderr together, as IPython's getoutput does."""
    chunks: list = []
    _run(cmd, True, chunks.append, chunks.append)
    return b"".join(chunks).decode("utf-8", "replace")
