"""Process policy: the one module that owns what a kernel does to its process (environment, its
own logger, fd capture, sys.stdout/sys.stderr, SIGINT until the tick, parent death, SIGTERM,
children, exit; forked children in forkchild.py). assembly.py calls these in order."""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("geokernel.process")

from .forkchild import install_fork_policy  # noqa: E402,F401 (what a forked child gets)


def fail(message: str, code: int = 1):
    """A one-line error on stderr and a non-zero exit (bad command line or connection file)."""
    sys.stderr.write(f"geokernel: error: {message}\n")
    raise SystemExit(code)


def setup_logging(log_level: str) -> None:
    """The kernel's own logger "geokernel" writes to the launcher's stderr (a descriptor taken
    before fd 2 is captured) and does not propagate: the root logger stays the user's, so
    logging.warning(), basicConfig() and library loggers reach the cell as on ipykernel."""
    log_stream = os.fdopen(os.dup(2), "w", buffering=1, errors="backslashreplace")
    handler = logging.StreamHandler(log_stream)
    handler.setFormatter(logging.Formatter("[geokernel %(levelname)s] %(message)s"))
    level = log_level.upper()
    logger = logging.getLogger("geokernel")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.setLevel(level)
    except ValueError:
        logger.setLevel(logging.WARNING)


def install_streams(publisher, on_write):
    """sys.stdout/sys.stderr become the kernel's streams (fileno(): the captured fds 1/2), with
    ipykernel 7's routing of other threads' output; returns the thread-parent policy."""
    from .iostream import OutStream
    from .threads import install as thread_policy

    thread_parent = thread_policy(publisher)
    captured = {c.fd for c in publisher.fd_captures}
    sys.stdout = OutStream("stdout", publisher, on_write=on_write, thread_parent=thread_parent,
                           fd=1 if 1 in captured else None)
    sys.stderr = OutStream("stderr", publisher, on_write=on_write, thread_parent=thread_parent,
                           fd=2 if 2 in captured else None)
    return thread_parent


def ignore_sigint() -> None:
    """Until the tick installs its handler (with the interpreter): Ctrl-C must not end an idle
    kernel (gevent would re-raise KeyboardInterrupt in the main greenlet)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
