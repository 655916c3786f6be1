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
    "geokernel.cli", "geokernel.connection", "geokernel.wire", "geokernel.message",
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


def warm_all(modules=DEFAULT_PRELOAD) -> dict:
    report = preload(modules)
    report["completion_ms"] = round(warm_completion() * 1000, 1)
    report["traceback_ms"] = round(warm_traceback() * 1000, 1)
    if os_threads() != 1:
        raise ThreadStarted("warming up started an OS thread")
    return report
