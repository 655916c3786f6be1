"""What the zygote loads before it forks anything: the modules every kernel imports at start,
on its first completion and on its first traceback, and jedi's caches (its first inference of
builtins costs ~0.4-0.9 s). All of it is shared copy-on-write by every forked kernel.

Nothing here may start an OS thread (a process with two threads cannot be forked safely):
`preload` checks the thread count after each module and refuses one that started a thread
(numpy does, through OpenBLAS's thread pool, unless OPENBLAS_NUM_THREADS=1)."""
from __future__ import annotations

import importlib
import os
import time

# a started kernel's imports (run_kernel, the interpreter, comms, the tick, the debugger shim),
# then what its first completion, traceback and `%magic` load
KERNEL_MODULES = (
    "gevent", "gevent.event", "gevent.queue", "gevent.lock", "gevent.socket", "gevent.select",
    "gevent.signal", "gevent.subprocess", "greenlet",
    "geokernel.cli", "geokernel.assembly", "geokernel.connection", "geokernel.wire",
    "geokernel.message",
    "geokernel.transport_zmtp", "geokernel.iopub", "geokernel.iostream", "geokernel.kernel",
    "geokernel.threads", "geokernel.fdcapture", "geokernel.interrupts", "geokernel.posix_timer",
    "geokernel.comms", "geokernel.aioloop", "geokernel.debugger", "geokernel.subprocesses",
    "geokernel.ipython.info", "geokernel.ipython.profile", "geokernel.ipython.interpreter",
    "geokernel.ipython.shell", "geokernel.ipython.history", "geokernel.ipython.display",
    "comm", "sqlite3", "asyncio",
)
COMPLETION_MODULES = ("IPython.core.completer", "jedi", "parso", "jedi.api", "jedi.inference")
TRACEBACK_MODULES = ("IPython.core.ultratb", "stack_data", "executing", "pure_eval",
                     "asttokens", "pygments.lexers.python", "pygments.formatters.terminal256",
                     "pygments.formatters.terminal", "pdb", "pydoc", "IPython.core.debugger")
DISPLAY_MODULES = ("IPython.display", "IPython.core.formatters", "IPython.core.pylabtools",
                   "IPython.lib.pretty", "html", "base64")
DEFAULT_PRELOAD = KERNEL_MODULES + COMPLETION_MODULES + TRACEBACK_MODULES + DISPLAY_MODULES


class ThreadStarted(RuntimeError):
    """Importing a module started an OS thread: the zygote could no longer fork safely."""


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def preload(modules=DEFAULT_PRELOAD) -> dict:
    """Import `modules` (a missing one is skipped and reported). Raises ThreadStarted when
    one leaves a second OS thread behind."""
    t0 = time.perf_counter()
    skipped = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # an optional module: the kernel imports it itself if it can
            skipped[name] = f"{type(e).__name__}: {e}"
        if os_threads() != 1:
            raise ThreadStarted(f"importing {name} started an OS thread (a zygote must stay "
                                "single-threaded to fork; for numpy set OPENBLAS_NUM_THREADS=1)")
    return {"modules": len(modules), "skipped": skipped,
            "import_ms": round((time.perf_counter() - t0) * 1000, 1)}


def warm_completion() -> float:
    """Run jedi once on what the first completion of a notebook asks (names, modules,
    builtins): jedi keeps the parsed and inferred builtins/typeshed stubs in module-level
    caches, which every forked kernel then inherits warm. Returns the seconds it took."""
    t0 = time.perf_counter()
    try:
        import jedi

        from ..ipython import parse_cache

        parse_cache.install()  # before jedi writes its cache (see parse_cache.py)
        for code in ("import o", "pri", "import os; os.pa", "'abc'.st"):
            jedi.Interpreter(code, [{}]).complete()
    except Exception:
        pass  # only a warm-up: a kernel completes without it, just slower the first time
    return time.perf_counter() - t0


def warm_traceback() -> float:
    """Format one traceback as the kernel does (IPython's verbose traceback with its syntax
    highlighting): loads the lexers, styles and stack_data's caches the first error needs."""
    t0 = time.perf_counter()
    try:
        from IPython.core import ultratb

        def failing():
            return 1 / 0

        try:
            failing()
        except ZeroDivisionError as e:
            formatter = ultratb.AutoFormattedTB(mode="Context")
            formatter.structured_traceback(type(e), e, e.__traceback__)
    except Exception:
        pass
    return time.perf_counter() - t0


def warm_shell() -> float:
    """Build one throwaway IPython shell (history in memory) and undo what it did to the
    process: the classes' lazily built state (traitlets' per-class tables, magics tables,
    compiled regexes, the completer's) is then made once, here, and shared; measured: a
    kernel's own shell dirtied ~5.9 MiB of private pages after this instead of ~9-10 MiB."""
    import atexit
    import sys

    t0 = time.perf_counter()
    saved = sys.displayhook, sys.excepthook, sys.modules.get("__main__")
    try:
        from traitlets.config import Config

        from ..ipython.shell import KernelShell  # the class every kernel instantiates

        config = Config()
        config.HistoryManager.hist_file = ":memory:"  # no file, and no history thread
        shell = KernelShell.instance(config=config)
        try:
            atexit.unregister(shell.atexit_operations)
        finally:
            KernelShell.clear_instance()
    except Exception:
        pass  # only a warm-up
    finally:
        sys.displayhook, sys.excepthook = saved[0], saved[1]
        if saved[2] is not None:
            sys.modules["__main__"] = saved[2]
    return time.perf_counter() - t0


_filler: list = []  # kept for the zygote's life (see fill_free_blocks)


def _free_blocks() -> dict[int, int]:
    """{block size: free blocks} in pymalloc's partly used pools (sys._debugmallocstats,
    which writes its table to the C-level stderr)."""
    import re
    import sys
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("ascii", "replace")
    out = {}
    for line in text.splitlines():  # "  class   size   num pools   blocks in use  avail blocks"
        m = re.fullmatch(r"\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*", line)
        if m:
            out[int(m.group(2))] = int(m.group(5))
    return out


def fill_free_blocks() -> float:
    """Occupy the free blocks that imports and the warm-up left in pymalloc's pools (~3-4 MiB
    scattered over most pages). Otherwise a forked kernel's first allocations land in those
    holes, and each one copies a whole shared 4 KiB page (measured: 20,000 small dicts made
    in a child dirtied 11 MiB with the holes, 5 MiB without). Returns the MiB occupied."""
    import sys

    header = sys.getsizeof(b"")
    filled = 0
    try:
        free = _free_blocks()
    except (OSError, AttributeError):
        return 0.0
    for size, count in free.items():
        if size - header >= 1:
            _filler.extend(bytes(size - header) for _ in range(count))
            filled += size * count
    return filled / 2**20


def warm_all(modules=DEFAULT_PRELOAD) -> dict:
    report = preload(modules)
    report["completion_ms"] = round(warm_completion() * 1000, 1)
    report["traceback_ms"] = round(warm_traceback() * 1000, 1)
    report["shell_ms"] = round(warm_shell() * 1000, 1)
    if os_threads() != 1:
        raise ThreadStarted("warming up started an OS thread")
    import gc

    gc.collect()  # what the warm-up freed becomes holes, then filled
    report["filled_mib"] = round(fill_free_blocks(), 2)
    return report
