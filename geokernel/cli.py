"""Command line: parses the arguments of the kernel (`-f CONNECTION_FILE` and the IPython
kernel options) and of its subcommands (`install`, `bench`, `launch`). The kernel itself is
built and run by assembly.run_kernel; process-wide policy is in process.py."""
from __future__ import annotations

import logging
import os
import sys

from .process import fail as _fail  # one-line error, non-zero exit

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


def run_kernel(*args, **kwargs) -> None:
    """Build and run the kernel (assembly.run_kernel; imported only when a kernel runs)."""
    from .assembly import run_kernel as run

    return run(*args, **kwargs)
