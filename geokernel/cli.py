"""Command line: run the kernel (`-f CONNECTION_FILE`), `install`, `bench`. Assembles the
layers; process-wide policy (environment, parent death, SIGTERM, exit) is in process.py."""
from __future__ import annotations

import logging
import os
import sys
import time

from .process import capture_fds as _capture_fds  # process policy lives there
from .process import finish as _finish
from .process import install_sigterm as _install_sigterm
from .process import process_setup as _process_setup
from .process import watch_parent as _watch_parent

log = logging.getLogger("geokernel")


# subcommand -> one line for --help (each is imported only when it runs)
SUBCOMMANDS = {
    "install": "install the geokernel kernelspec (geokernel install --help)",
    "bench": "compare kernels side by side (geokernel bench --help)",
    "launch": "Enterprise Gateway launcher: start a remote kernel (geokernel launch --help)",
}
ENV_CHOICES = {"GEOKERNEL_TRANSPORT": ("zmtp", "zmq"),
               "GEOKERNEL_WARM_COMPLETER": ("execute", "start", "0", "off", "no")}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _parser(prog: str, description: str, epilog: str | None = None):
    import argparse  # ~3 ms: not on the launcher's usual path (see _connection_file_only)

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, non-zero exit
            self.exit(2, f"{self.prog}: error: {message}\n")

    return Parser(prog=prog, description=description, epilog=epilog,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def _connection_file_only(argv):
    """The connection file when argv is exactly what kernelspecs pass (`-f FILE`), else None."""
    if len(argv) == 2 and argv[0] in ("-f", "--connection-file") and not argv[1].startswith("-"):
        return argv[1]
    return None


def _fail(message: str, code: int = 1):
    sys.stderr.write(f"geokernel: error: {message}\n")
    raise SystemExit(code)


def _log_level(value: str, source: str) -> str:
    if value.upper() not in LOG_LEVELS:
        _fail(f"{source}: invalid log level {value!r} (choose from {', '.join(LOG_LEVELS)})", 2)
    return value.upper()


def _check_env() -> None:
    """Environment settings the kernel reads later, checked now: a typo is an error at launch,
    not a silent default (cheap: no imports)."""
    for name, choices in ENV_CHOICES.items():
        value = os.environ.get(name)
        if value is not None and value.lower() not in choices:
            _fail(f"{name}={value!r}: choose from {', '.join(choices)}", 2)
    tick = os.environ.get("GEOKERNEL_TICK_MS")
    if tick is not None:
        try:
            ok = 0 < float(tick) < 1e6
        except ValueError:
            ok = False
        if not ok:
            _fail(f"GEOKERNEL_TICK_MS={tick!r}: a positive number of milliseconds", 2)


def main(argv=None, parent_pid: int | None = None, warm_completer: bool = True,
         on_listening=None) -> None:
    """parent_pid: the process whose death ends the kernel (default: the launching process;
    a pooled kernel's is the provisioner's process, not the zygote that forked it);
    warm_completer: warm jedi in idle time (ipython/warmup.py; a zygote did it already);
    on_listening: called once the kernel's sockets are bound (a pool's ready signal)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "install":
        return _install(argv[1:])
    if argv and argv[0] == "bench":
        from .bench import main as bench_main  # imported only for this subcommand

        return bench_main(argv[1:])
    if argv and argv[0] == "launch":  # Enterprise Gateway's remote launcher protocol
        return __import__("geokernel.launcher", fromlist=["main"]).main(argv[1:])
    if argv == ["--version"]:
        from . import __version__

        print(f"geokernel {__version__}")
        return None
    _check_env()
    log_level = _log_level(os.environ.get("GEOKERNEL_LOG_LEVEL", "WARNING"), "GEOKERNEL_LOG_LEVEL")
    connection_file = _connection_file_only(argv)
    if connection_file is not None:
        return run_kernel(connection_file, log_level, parent_pid=parent_pid,
                          warm_completer=warm_completer, on_listening=on_listening)
    args, options = _parse_kernel_args(argv, log_level)
    run_kernel(args.connection_file, args.log_level, options, parent_pid=parent_pid,
               warm_completer=warm_completer, on_listening=on_listening)


def _parse_kernel_args(argv, log_level):
    """The kernel's options: ours, plus the IPython kernel-app options frontends and users pass
    to Python kernels (the profile and its config are loaded with the interpreter)."""
    from . import __version__

    epilog = "subcommands:\n" + "".join(f"  geokernel {name:9} {text}\n"
                                        for name, text in SUBCOMMANDS.items())
    epilog += ("\nIPython config options such as --InteractiveShell.ast_node_interactivity=all,\n"
               "--IPKernelApp.exec_lines=..., --HistoryManager.hist_file=:memory: are applied\n"
               "over the profile's ipython_config.py / ipython_kernel_config.py.")
    parser = _parser("geokernel", "Run the geokernel Jupyter kernel.", epilog)
    parser.add_argument("-f", "--connection-file", required=True, help="Jupyter connection file")
    parser.add_argument("--log-level", default=log_level, type=str.upper, choices=LOG_LEVELS)
    parser.add_argument("--debug", action="store_const", const="DEBUG", dest="log_level",
                        help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"geokernel {__version__}")
    parser.add_argument("--profile-dir", help="IPython profile folder to load")
    parser.add_argument("--profile", help="IPython profile name (default: default)")
    parser.add_argument("--matplotlib", nargs="?", const="auto", default=None,
                        help="enable matplotlib integration (default backend: inline)")
    parser.add_argument("-c", dest="code", help="code to run at start-up (after the profile's)")
    parser.add_argument("-m", dest="module", help="module to run at start-up")
    parser.add_argument("--ext", action="append", help="IPython extension to load (repeatable)")
    args, rest = parser.parse_known_args(argv)
    config_args, unknown = [], []
    i = 0
    while i < len(rest):  # --Section.trait=value or --Section.trait value
        arg = rest[i]
        name = arg[2:].split("=", 1)[0]
        section, _, trait = name.partition(".")
        if arg.startswith("--") and section.isidentifier() and trait.isidentifier():
            if "=" in arg:
                config_args.append(arg)
            elif i + 1 < len(rest):
                config_args += [arg, rest[i + 1]]
                i += 1
            else:
                parser.error(f"argument {arg}: expected a value")
        else:
            unknown.append(arg)
        i += 1
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.profile_dir is not None and not os.path.isdir(os.path.expanduser(args.profile_dir)):
        parser.error(f"argument --profile-dir: {args.profile_dir!r} is not a folder")
    if args.profile not in (None, "default") and args.profile_dir is None:
        # where IPython looks (IPython.paths.get_ipython_dir, without importing IPython)
        ipython_dir = os.path.expanduser(os.environ.get("IPYTHONDIR") or "~/.ipython")
        if not os.path.isdir(os.path.join(ipython_dir, f"profile_{args.profile}")):
            parser.error(f"argument --profile: profile {args.profile!r} not found in {ipython_dir}")
    options = {"profile_dir": args.profile_dir, "profile": args.profile,
               "matplotlib": args.matplotlib, "code": args.code, "module": args.module,
               "ext": args.ext, "config_args": config_args}
    return args, options


def _install(argv) -> None:
    from .kernelspec import (DISPLAY_NAME, KERNEL_NAME, POOL_DISPLAY_NAME, POOL_KERNEL_NAME,
                             InstallError, install)

    parser = _parser("geokernel install", "Install the geokernel kernelspec (for the Python "
                     "that runs this command).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix")
    where.add_argument("--prefix", help="install into PREFIX/share/jupyter/kernels")
    parser.add_argument("--name", default=KERNEL_NAME,
                        help="kernelspec name: letters, digits, - . _ (default: %(default)s)")
    parser.add_argument("--display-name", default=DISPLAY_NAME)
    parser.add_argument("--replace", action="store_true",
                        help="replace an existing kernelspec folder that geokernel did not write")
    parser.add_argument("--no-pool", action="store_true",
                        help=f"without a --name, do not also install {POOL_KERNEL_NAME} (kernels "
                             "forked by a warm zygote)")
    a = parser.parse_args(argv)
    specs = [(a.name, a.display_name, False)]
    if a.name == KERNEL_NAME and not a.no_pool:
        specs.append((POOL_KERNEL_NAME, POOL_DISPLAY_NAME if a.display_name == DISPLAY_NAME
                      else f"{a.display_name} (pooled)", True))
    for name, display_name, pooled in specs:
        try:
            dest = install(a.user, a.sys_prefix, a.prefix, name, display_name, a.replace, pooled)
        except InstallError as e:
            _fail(str(e), 2)
        except OSError as e:
            _fail(f"cannot install kernelspec: {e}")
        print(f"Installed kernelspec {os.path.basename(dest)} in {dest}")






def _setup_logging(log_level: str) -> None:
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


def run_kernel(connection_file: str, log_level: str = "WARNING", options: dict | None = None,
               watch_parent: bool = True, parent_pid: int | None = None,
               warm_completer: bool = True, on_listening=None) -> None:
    """options: the IPython profile options (see _parse_kernel_args), applied when IPython loads;
    watch_parent: exit when the launching process (or `parent_pid`) dies (off for `geokernel
    launch`); warm_completer: see main."""
    t0 = time.perf_counter()
    _setup_logging(log_level)
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
    if on_listening is not None:
        on_listening()
    if watch_parent:
        _watch_parent(parent=parent_pid)
    _process_setup()

    from .iopub import Publisher
    from .iostream import OutStream
    from .ipython import info as ipython_info
    from .kernel import Kernel

    publisher = Publisher(transport.send, session)
    if hasattr(transport, "backlog"):
        publisher.backlog = lambda: transport.backlog("iopub")
    kernel = Kernel(session, None, transport.send, publisher, info.ports)
    kernel.connection_file = os.path.abspath(connection_file)  # %connect_info, %qtconsole
    _capture_fds(kernel, publisher)
    yielder = _CooperativeYield(kernel)
    from .threads import install as thread_policy
    thread_parent = thread_policy(publisher)  # ipykernel 7's routing of thread output
    captured = {c.fd for c in publisher.fd_captures}
    sys.stdout = OutStream("stdout", publisher, on_write=yielder, thread_parent=thread_parent,
                           fd=1 if 1 in captured else None)
    sys.stderr = OutStream("stderr", publisher, on_write=yielder, thread_parent=thread_parent,
                           fd=2 if 2 in captured else None)
    publisher.enable_threads(gevent.get_hub().loop)
    # IPython (~100 ms) loads on first need or right after the hub's first turn, so the
    # kernel answers kernel_info (is "ready") without waiting for it
    kernel.static_kernel_info = ipython_info.kernel_info
    kernel.load_interpreter = lambda: _load_interpreter(kernel, publisher, options,
                                                        warm_completer and info.ports)
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


def _load_interpreter(kernel, publisher, options=None, warm_ports=None):
    """warm_ports: the kernel's ports, to warm the completer while idle (None: do not)."""
    from .interrupts import ExecutionTick
    from .ipython.interpreter import IPythonInterpreter
    from .ipython.profile import load_profile, put_cwd_on_path

    profile = load_profile(options)  # the IPython profile and config, as IPKernelApp reads them
    put_cwd_on_path(profile.get("ignore_cwd"))
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
        if self._gevent.getcurrent() in k.running:
            self._last = now
            self._gevent.idle()
