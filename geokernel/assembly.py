"""The composition root: builds the kernel from its collaborators, each handed to the
constructor (or start) of the one that uses it, and runs it until shutdown. cli.py only parses
the command line and calls run_kernel; the pool's zygote and `geokernel launch` call it too.

One request, socket to IPython and back (the map a newcomer follows):
  transport_zmtp.ZmtpTransport (or transport_zmq / transport_memory; protocol in
  transport_base) decodes frames with wire.Codec -> Transport.deliver -> Kernel.on_shell /
  on_control / on_stdin (kernel.py) -> the target shell's queue and worker greenlet
  (subshells.py) -> a RequestContext bound in that greenlet (context.py) -> the handler, e.g.
  Kernel.execute_request -> ipython/interpreter.py -> IPython's run_cell. Everything the cell
  publishes (iostream.OutStream, display, comms, input requests) takes the greenlet's context
  as parent -> iopub.Publisher -> Transport.send("iopub"); the reply goes back through
  Kernel.reply -> Transport.send(channel).
Process-wide policy (logging, fd capture, sys.stdout/stderr, signals, parent death, exit) is
called from here but lives in process.py."""
from __future__ import annotations

import logging
import os
import time

from . import process

log = logging.getLogger("geokernel")


def transport_class(kind: str | None = None):
    """The Transport class for GEOKERNEL_TRANSPORT (zmtp, the default, or zmq)."""
    kind = (kind or os.environ.get("GEOKERNEL_TRANSPORT", "zmtp")).lower()
    if kind == "zmq":
        # libzmq through zmq.green: the fallback (libzmq adds an I/O and a reaper thread)
        from .transport_zmq import ZmqTransport

        return ZmqTransport
    # our pure-Python ZMTP: no libzmq, so the kernel really is one OS thread
    from .transport_zmtp import ZmtpTransport

    return ZmtpTransport


def run_kernel(connection_file: str, log_level: str = "WARNING", options: dict | None = None,
               watch_parent: bool = True, parent_pid: int | None = None,
               warm_completer: bool = True, on_listening=None) -> None:
    """options: the IPython profile options (cli._parse_kernel_args), applied when IPython
    loads; watch_parent: exit when the launching process (or `parent_pid`) dies (off for
    `geokernel launch`); warm_completer: warm jedi in idle time (ipython/warmup.py; a pool's
    zygote did it already); on_listening: called once the sockets are bound."""
    t0 = time.perf_counter()
    process.setup_logging(log_level)
    from .connection import ConnectionFileError, load_connection_file
    from .transport_base import TransportError
    from .wire import Codec, Signer

    try:
        info = load_connection_file(connection_file)
        signer = Signer(info.key, info.signature_scheme)
    except (ConnectionFileError, ValueError) as e:
        process.fail(str(e))

    import gevent
    import gevent.event

    from .message import new_id

    session = new_id()
    transport = transport_class()(info, Codec(signer), session)
    try:
        transport.bind()
    except TransportError as e:
        process.fail(str(e))
    if on_listening is not None:
        on_listening()
    if watch_parent:
        process.watch_parent(parent=parent_pid)
    process.process_setup()

    from .iopub import Publisher
    from .ipython import info as ipython_info
    from .kernel import Kernel

    publisher = Publisher(transport.send, session, backlog=lambda: transport.backlog("iopub"))
    done = gevent.event.Event()
    # IPython (~100 ms) loads on first need or right after the hub's first turn, so the
    # kernel answers kernel_info (is "ready") without waiting for it
    warm_ports = info.ports if warm_completer else None
    kernel = Kernel(session, None, transport.send, publisher, info.ports,
                    load_interpreter=lambda k: load_interpreter(k, publisher, options, warm_ports),
                    static_kernel_info=ipython_info.kernel_info,
                    on_shutdown=lambda restart: done.set(),
                    connection_file=os.path.abspath(connection_file))
    process.capture_fds(kernel, publisher)
    process.install_streams(publisher, on_write=CooperativeYield(kernel))
    publisher.enable_threads(gevent.get_hub().loop)
    process.ignore_sigint()
    process.install_sigterm(done)
    kernel.start()
    transport.start({"shell": kernel.on_shell, "control": kernel.on_control,
                     "stdin": kernel.on_stdin})
    gevent.spawn(_warm_up, kernel)
    log.info("kernel listening after %.0f ms", (time.perf_counter() - t0) * 1000)
    done.wait()
    process.finish(kernel, transport, publisher)


def load_interpreter(kernel, publisher, options=None, warm_ports=None):
    """warm_ports: the kernel's ports, to warm the completer while idle (None: do not)."""
    from .interrupts import ExecutionTick
    from .ipython.interpreter import IPythonInterpreter
    from .ipython.profile import load_profile, put_cwd_on_path

    profile = load_profile(options)  # the IPython profile and config, as IPKernelApp reads them
    put_cwd_on_path(profile.get("ignore_cwd"))
    from .ipython import parse_cache

    parse_cache.install()  # an interrupted jedi cache write must not break completion
    interp = IPythonInterpreter(publisher, request_input=kernel.request_input, kernel=kernel,
                                profile=profile)
    kernel.attach_interpreter(interp)
    # comms load with the interpreter (the comm package is ~4 ms of start-up); a comm message
    # that arrives first makes the dispatcher load the interpreter, then finds its handler
    from .comms import CommBridge

    comms = CommBridge(publisher, kernel)
    comms.install()
    kernel.shell_handlers.update(comms.handlers())
    kernel.comm_manager = comms.manager  # where code written for ipykernel looks for it
    from .comms import KernelComm
    from .legacy_comm import install as install_legacy_comm

    install_legacy_comm(KernelComm, publisher=publisher, kernel=kernel)  # ipykernel.comm.Comm
    # GEOKERNEL_TICK_MS / GEOKERNEL_TICK_MODE: the tick period (default 20 ms) and how it meets
    # system calls (interrupts.TICK_MODES), for measuring
    tick = ExecutionTick(kernel, float(os.environ.get("GEOKERNEL_TICK_MS", "20")) / 1000,
                         mode=os.environ.get("GEOKERNEL_TICK_MODE", "hybrid"))
    tick.install()
    from .debugger import install_debugger  # light: debugpy loads on the first debug_request

    install_debugger(kernel, interp, publisher, tick)
    _run_profile_startup(interp.shell, publisher, profile)
    when = os.environ.get("GEOKERNEL_WARM_COMPLETER", "execute").lower()
    if warm_ports and when not in ("0", "off", "no"):
        # jedi warmed in idle time: after the first cell (default) or =start; =0: never
        from .ipython import warmup

        kernel.completer_warmup = warmup.start(kernel, interp.shell, warm_ports,
                                               after="start" if when == "start" else "execute")
    return interp


def _run_profile_startup(shell, publisher, profile) -> None:
    """Extensions, start-up files, exec_lines: their output belongs to no request (as on
    ipykernel, where it is published before the first one)."""
    from .ipython.profile import run_startup

    from .context import NO_REQUEST, bound

    with bound(NO_REQUEST):
        run_startup(shell, profile)
        publisher.flush_streams()


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




class CooperativeYield:
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
        if self._gevent.getcurrent() in k.running:
            self._last = now
            self._gevent.idle()
