"""Process policy after os.fork(): what a forked child of the kernel keeps and what it must not
touch (the rest of process policy is in process.py, which re-exports install_fork_policy).

A child made by os.fork() (multiprocessing's fork context, a bare os.fork in a cell) is a copy
of the kernel: the same signal handlers, the same sockets and the same gevent hub watching them.
Left alone it could read the kernel's requests or send replies, and a SIGTERM would only
schedule a callback on a hub that never runs (Pool.terminate then waits forever). So
`after_fork_in_child()` (run by os.register_at_fork in every child) gives it what plain Python
gives a forked child: default signal handlers, no timer, sys.stdout/sys.stderr writing lines
to fds 1/2 (the kernel's fd capture, so the output still reaches the cell), plain input(), a
private libev loop, and the kernel's listening and connected sockets closed. If the child
returns into the kernel's dispatcher (a cell that forked and did not exit), it exits there.
"""
from __future__ import annotations

import os
import signal
import sys

_state: dict = {}  # what install_fork_policy was given


def install_fork_policy(kernel=None, publisher=None, ports=None) -> None:
    """Register after_fork_in_child for every fork of this process (once)."""
    import builtins
    import getpass

    first = not _state
    _state.setdefault("input", (builtins.input, getpass.getpass))  # before cells replace them
    _state.update(kernel=kernel, publisher=publisher,
                  ports=set((ports or {}).values()) if isinstance(ports, dict) else set(ports or ()))
    _state["pid"] = os.getpid()
    if first and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork_in_child)


def after_fork_in_child() -> None:
    if not _state or os.getpid() == _state.get("pid"):
        return
    _state["pid"] = os.getpid()  # a grandchild forked from this child does this again
    # the kernel's POSIX timers (the tick, the unblock and exit timers) are not inherited;
    # SIGALRM is the user's and stays as the user set it, as in plain Python
    for sig, handler in ((signal.SIGINT, signal.default_int_handler),
                         (signal.SIGTERM, signal.SIG_DFL)):
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):
            pass
    _plain_streams()
    _plain_input()
    kernel, publisher = _state.get("kernel"), _state.get("publisher")
    if kernel is not None:
        kernel.executing = False  # no cooperative yields, no tick: nothing runs the hub
        kernel.worker = None
        kernel._send = _exit_child  # back in the dispatcher (the cell returned): leave
    if publisher is not None:
        publisher._send = _drop
        publisher.fd_captures = []  # the parent reads the memfd; the child only writes to it
    _private_hub()
    _close_kernel_sockets(_state.get("ports") or set())


def _plain_streams() -> None:
    import io

    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            raw = io.FileIO(fd, "w", closefd=False)
        except OSError:
            continue
        # line-buffered, as on a terminal: a whole line reaches the capture in one write(), so
        # lines of workers printing at once never interleave mid-line ("worker  01"), and a
        # finished line is there even if the child is then terminated. No BufferedWriter: it
        # seeks by its own idea of the offset, which other writers of the shared memfd move
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
        setattr(sys, name, stream)


def _plain_input() -> None:
    import builtins
    import getpass

    if "input" in _state:
        builtins.input, getpass.getpass = _state["input"]  # not the kernel's input_request


def _private_hub() -> None:
    # libev shares the parent's epoll instance after fork: changing its watchers in the child
    # would unregister the kernel's own sockets in the parent
    if "gevent" not in sys.modules:
        return
    try:
        from gevent._hub_local import get_hub_if_exists

        hub = get_hub_if_exists()
        if hub is not None:
            hub.loop.reinit()
    except Exception:
        pass


def _close_kernel_sockets(ports: set) -> None:
    from .ownsockets import socket_fds_on_ports

    for fd in socket_fds_on_ports(ports):
        try:
            os.close(fd)  # closing our copy only: the parent's socket stays open
        except OSError:
            pass


def _drop(*args, **kwargs) -> None:
    return None


def _exit_child(*args, **kwargs) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)
