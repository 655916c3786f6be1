"""Process policy: the one module that owns what a kernel does to its process (environment,
fd capture, parent death, SIGTERM, children, exit). cli.py assembles the layers and calls these."""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("geokernel.process")

from .forkchild import install_fork_policy  # noqa: E402,F401 (what a forked child gets)


def process_setup() -> None:
    # what a notebook user expects from a kernel's environment (as ipykernel sets it)
    os.environ.update({"TERM": "xterm-color", "CLICOLOR": "1", "PAGER": "cat", "GIT_PAGER": "cat"})
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


_parent_watch = None  # the hub watcher (kept referenced so it keeps watching)


def watch_parent(poll_interval: float = 1.0, parent: int | None = None) -> None:
    """Exit (as on SIGTERM) when the launching process dies, without a thread and without
    wake-ups: a pidfd of the parent process becomes readable when the whole process exits,
    never because one of its threads ended (PR_SET_PDEATHSIG follows the launching thread).
    As ipykernel: only when launched by a Jupyter client (JPY_PARENT_PID is set). Without
    pidfd_open (Linux < 5.3): check the parent every `poll_interval` seconds. `parent`: the
    process to watch when it is not the parent (a pooled kernel watches the provisioner's
    process, not the zygote that forked it)."""
    global _parent_watch
    import signal

    import gevent

    if not os.environ.get("JPY_PARENT_PID"):
        return  # started by hand: stays up like ipykernel
    adopted = parent is not None
    parent = parent if adopted else os.getppid()
    if parent <= 1:
        raise SystemExit(0)  # the launcher died before we could watch it

    def alive() -> bool:
        if not adopted:
            return os.getppid() == parent
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def parent_died(*_):
        log.info("parent process %d exited: shutting down", parent)
        _parent_watch.stop()
        os.kill(os.getpid(), signal.SIGTERM)  # the usual way out (install_sigterm)

    loop = gevent.get_hub().loop
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        _parent_watch = loop.timer(poll_interval, poll_interval)
        _parent_watch.start(lambda: None if alive() else parent_died())
        return
    if not alive():
        raise SystemExit(0)  # died while we opened it (the pid may already be reused)
    _parent_watch = loop.io(pidfd, 1)  # readable once the process has exited
    _parent_watch.start(parent_died)


def capture_fds(kernel, publisher) -> None:
    from .fdcapture import FdCapture, FdPoller

    if not FdCapture.available() or os.environ.get("GEOKERNEL_NO_FD_CAPTURE"):
        return
    for fd, name in ((1, "stdout"), (2, "stderr")):
        publisher.fd_captures.append(FdCapture(fd, name, publisher))
    kernel.cell_hooks.append(FdPoller(list(publisher.fd_captures)))


def install_sigterm(done) -> None:
    import signal

    import gevent

    def on_term(signum, frame):
        gevent.get_hub().loop.run_callback(done.set)
        # if the hub cannot run soon (a cell stuck in C), the tick will still get it there

    signal.signal(signal.SIGTERM, on_term)


def kill_children() -> None:
    try:
        import psutil
    except ImportError:
        return
    children = psutil.Process().children(recursive=True)
    for c in children:
        try:
            c.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=0.5)
    for c in alive:
        try:
            c.kill()
        except psutil.Error:
            pass


def finish(kernel, transport, publisher, atexit_timeout: float = 3.0,
           atexit_grace: float = 1.0) -> None:
    """Exit like Python: the last replies leave, then the atexit handlers run (as at the end of
    a Python program, at shutdown and at restart), then children are ended. A handler still
    running after `atexit_timeout` seconds ends the process cleanly from the next bytecode; one
    stuck in C code is killed `atexit_grace` seconds later by a signal with its default action."""
    try:
        publisher.flush_streams()
        if kernel.interpreter_loaded:
            kernel.interp.shutdown()
        debugger = kernel.control_handlers.get("debug_request")
        if debugger is not None:
            debugger.close()
        transport.close()
        transport.term()  # waits (up to linger) for the last replies to leave
        run_atexit(atexit_timeout, atexit_grace)
        kill_children()
    finally:
        _exit_now()


def _exit_now(code: int = 0) -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def run_atexit(timeout: float, grace: float) -> None:
    import atexit
    import signal

    from .posix_timer import PosixTimer

    # the frontend is gone: what handlers print goes to the launcher's streams, as Python's
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    soft, hard = signal.SIGRTMIN + 12, signal.SIGRTMIN + 13  # reserved like the tick's

    def out_of_time(signum, frame):
        log.warning("atexit handlers still running after %.1f s: exiting", timeout)
        kill_children()
        _exit_now()

    timers = []
    try:
        signal.signal(soft, out_of_time)
        signal.signal(hard, signal.SIG_DFL)  # terminates the process, even inside C code
        for signo, delay in ((soft, timeout), (hard, timeout + grace)):
            timer = PosixTimer(signo)
            timer.arm(delay)
            timers.append(timer)
    except OSError as e:
        log.warning("atexit handlers run without a time limit: %s", e)
    atexit._run_exitfuncs()
    for timer in timers:
        timer.disarm()
