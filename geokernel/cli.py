"""Command line: run the kernel (`-f CONNECTION_FILE`), `install`, `bench`. Assembles the
layers and owns process-wide state (signals, sys.stdout/stderr, environment, exit)."""
from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("geokernel")


def _parser(prog: str, description: str):
    import argparse  # ~3 ms: not on the launcher's usual path (see _connection_file_only)

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, non-zero exit
            self.exit(2, f"{self.prog}: error: {message}\n")

    return Parser(prog=prog, description=description)


def _connection_file_only(argv):
    """The connection file when argv is exactly what kernelspecs pass (`-f FILE`), else None."""
    if len(argv) == 2 and argv[0] in ("-f", "--connection-file") and not argv[1].startswith("-"):
        return argv[1]
    return None


def _fail(message: str, code: int = 1):
    sys.stderr.write(f"geokernel: error: {message}\n")
    raise SystemExit(code)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "install":
        return _install(argv[1:])
    if argv and argv[0] == "bench":
        from .bench import main as bench_main  # imported only for this subcommand

        return bench_main(argv[1:])
    log_level = os.environ.get("GEOKERNEL_LOG_LEVEL", "WARNING")
    connection_file = _connection_file_only(argv)
    if connection_file is not None:
        return run_kernel(connection_file, log_level)
    parser = _parser("geokernel", "Run the geokernel Jupyter kernel.")
    parser.add_argument("-f", "--connection-file", required=True, help="Jupyter connection file")
    parser.add_argument("--log-level", default=log_level)
    args = parser.parse_args(argv)
    run_kernel(args.connection_file, args.log_level)


def _install(argv) -> None:
    from .kernelspec import DISPLAY_NAME, KERNEL_NAME, install

    parser = _parser("geokernel install", "Install the geokernel kernelspec.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix")
    where.add_argument("--prefix", help="install into PREFIX/share/jupyter/kernels")
    parser.add_argument("--name", default=KERNEL_NAME)
    parser.add_argument("--display-name", default=DISPLAY_NAME)
    a = parser.parse_args(argv)
    try:
        dest = install(a.user, a.sys_prefix, a.prefix, a.name, a.display_name)
    except OSError as e:
        _fail(f"cannot install kernelspec: {e}")
    print(f"Installed kernelspec {a.name} in {dest}")


def _process_setup() -> None:
    # what a notebook user expects from a kernel's environment (as ipykernel sets it)
    os.environ.update({"TERM": "xterm-color", "CLICOLOR": "1", "PAGER": "cat", "GIT_PAGER": "cat"})
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def _watch_parent() -> None:
    """Exit when the launching process dies, without a thread: the kernel asks Linux for a
    SIGTERM when its parent goes away (PR_SET_PDEATHSIG)."""
    parent = os.environ.get("JPY_PARENT_PID")
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if parent and parent.isdigit() and os.getppid() != int(parent) and int(parent) > 1:
        # the parent already died before we asked to be told
        try:
            os.kill(int(parent), 0)
        except ProcessLookupError:
            raise SystemExit(0)
        except PermissionError:
            pass


def run_kernel(connection_file: str, log_level: str = "WARNING") -> None:
    t0 = time.perf_counter()
    # log to the launcher's stderr, kept on its own descriptor before fd 2 is captured
    log_stream = os.fdopen(os.dup(2), "w", buffering=1)
    logging.basicConfig(stream=log_stream, level=log_level.upper(),
                        format="[geokernel %(levelname)s] %(message)s")
    from .connection import ConnectionFileError, load_connection_file
    from .wire import Codec, Signer

    try:
        info = load_connection_file(connection_file)
        signer = Signer(info.key, info.signature_scheme)
    except (ConnectionFileError, ValueError) as e:
        _fail(str(e))

    import gevent
    import gevent.event

    from .message import new_id

    if os.environ.get("GEOKERNEL_TRANSPORT", "zmtp").lower() == "zmq":
        # libzmq through zmq.green: the fallback (libzmq adds an I/O and a reaper thread)
        from .transport import Transport, TransportError
    else:
        # our pure-Python ZMTP: no libzmq, so the kernel really is one OS thread
        from .transport_zmtp import TransportError, ZmtpTransport as Transport

    session = new_id()
    transport = Transport(info, Codec(signer), session)
    try:
        transport.bind()
    except TransportError as e:
        _fail(str(e))
    _watch_parent()
    _process_setup()

    from .iopub import Publisher
    from .iostream import OutStream
    from .ipython import info as ipython_info
    from .kernel import Kernel

    publisher = Publisher(transport.send, session)
    kernel = Kernel(session, None, transport.send, publisher, info.ports)
    _capture_fds(kernel, publisher)
    yielder = _CooperativeYield(kernel)
    from .threads import install as thread_policy
    thread_parent = thread_policy(publisher)  # ipykernel 7's routing of thread output
    sys.stdout = OutStream("stdout", publisher, on_write=yielder, thread_parent=thread_parent)
    sys.stderr = OutStream("stderr", publisher, on_write=yielder, thread_parent=thread_parent)
    publisher.enable_threads(gevent.get_hub().loop)
    # IPython (~100 ms) loads on first need or right after the hub's first turn, so the
    # kernel answers kernel_info (is "ready") without waiting for it
    kernel.static_kernel_info = ipython_info.kernel_info
    kernel.load_interpreter = lambda: _load_interpreter(kernel, publisher)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the tick's handler is installed
    done = gevent.event.Event()
    kernel.on_shutdown = lambda restart: done.set()
    _install_sigterm(done)
    transport.handlers = {"shell": kernel.on_shell, "control": kernel.on_control,
                          "stdin": kernel.on_stdin}
    kernel.start()
    transport.start()
    gevent.spawn(_warm_up, kernel)
    log.info("kernel listening after %.0f ms", (time.perf_counter() - t0) * 1000)
    done.wait()
    _finish(kernel, transport, publisher)


def _load_interpreter(kernel, publisher):
    from .interrupts import ExecutionTick
    from .ipython.interpreter import IPythonInterpreter

    interp = IPythonInterpreter(publisher, request_input=kernel.request_input, kernel=kernel)
    kernel.attach_interpreter(interp)
    # comms load with the interpreter (the comm package is ~4 ms of start-up); a comm message
    # that arrives first makes the dispatcher load the interpreter, then finds its handler
    from .comms import CommBridge

    comms = CommBridge(publisher, kernel)
    comms.install()
    kernel.shell_handlers.update(comms.handlers())
    kernel.comm_manager = comms.manager  # where code written for ipykernel looks for it
    # GEOKERNEL_TICK_MS: the tick period, for measuring its cost (default 20 ms)
    tick = ExecutionTick(kernel, float(os.environ.get("GEOKERNEL_TICK_MS", "20")) / 1000)
    tick.install()
    from .debugger import install_debugger  # light: debugpy loads on the first debug_request

    install_debugger(kernel, interp, publisher, tick)
    return interp


# IPython's dependencies, imported one by one with a hub turn in between, so a kernel_info
# request is answered within one step (any IPython.* import then costs one ~45 ms block)
# (only modules IPython loads anyway: preloading must not cost memory)
_PRELOAD = ("inspect", "logging.handlers", "logging.config", "argparse", "pickle", "traitlets",
            "traitlets.config", "sqlite3", "pygments", "codeop", "bdb", "uuid", "shutil",
            "tempfile")


def _warm_up(kernel) -> None:
    import importlib

    import gevent

    for name in _PRELOAD:
        gevent.idle()
        if kernel.interpreter_loaded:
            return
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # the rest is one block: do it once the client has its first kernel_info reply (a zmq
    # client reconnects every 100 ms, so it may ask only now) or after one such interval
    kernel.answered_kernel_info.wait(timeout=0.1)
    gevent.idle()
    kernel.interp


def _capture_fds(kernel, publisher) -> None:
    from .fdcapture import FdCapture

    if not FdCapture.available() or os.environ.get("GEOKERNEL_NO_FD_CAPTURE"):
        return
    for fd, name in ((1, "stdout"), (2, "stderr")):
        cap = FdCapture(fd, name, publisher)
        publisher.fd_captures.append(cap)
        kernel.cell_hooks.append(cap)


class _CooperativeYield:
    """Called on every stream write: lets the hub run at most every 20 ms of writing, and only
    from the executing cell's greenlet (cheap: no switch on most writes)."""

    def __init__(self, kernel, every: float = 0.02):
        import gevent

        self._kernel, self._every, self._gevent = kernel, every, gevent
        self._last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        k = self._kernel
        if k.executing and self._gevent.getcurrent() is k.worker:
            self._last = now
            self._gevent.idle()


def _install_sigterm(done) -> None:
    import signal

    import gevent

    def on_term(signum, frame):
        gevent.get_hub().loop.run_callback(done.set)
        # if the hub cannot run soon (a cell stuck in C), the tick will still get it there

    signal.signal(signal.SIGTERM, on_term)


def _kill_children() -> None:
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


def _finish(kernel, transport, publisher) -> None:
    try:
        publisher.flush_streams()
        if kernel.interpreter_loaded:
            kernel.interp.shutdown()
        debugger = kernel.control_handlers.get("debug_request")
        if debugger is not None:
            debugger.close()
        _kill_children()
        transport.close()
        transport.term()  # waits (up to linger) for the last replies to leave
    finally:
        sys.__stdout__.flush()
        sys.__stderr__.flush()
        os._exit(0)
