"""One persistent asyncio event loop for the kernel's thread, driven by the gevent hub.

The loop never blocks in its selector: a greenlet waits cooperatively (a gevent io watcher on
the selector's epoll fd plus a timer for the next asyncio deadline) and then runs one
non-blocking `_run_once`. While the kernel is idle the driver greenlet runs it, so tasks created
by a cell keep running between cells; while a plain cell runs the loop is paused (asyncio code
never interleaves with synchronous cell code, as on ipykernel); a cell with top-level `await`
(or `loop.run_until_complete` in a cell) drives it from the cell's own greenlet, so the tick can
interrupt it. No timer is armed when no asyncio timer is pending: zero idle wake-ups.

The loop is the thread's running loop at all times (as on ipykernel, `asyncio.get_running_loop()`
and `asyncio.create_task()` work in plain cells). `asyncio.run()` in a cell still works (unlike
ipykernel): it runs its own loop in place of ours for its duration.

Each callback runs with the parent header of the request that scheduled its task (the request
context, a ContextVar the dispatcher binds in the request's greenlet and asyncio copies into
every task's context), so a background task's output goes to the cell that created it.
"""
from __future__ import annotations

import logging
import sys
import threading

import gevent
import gevent.event
from gevent.hub import Waiter, get_hub

# asyncio (~19 ms to import) is imported only when user code or IPython first imports it: the
# loop class is built then (see install_on_import)

log = logging.getLogger("geokernel.aioloop")

_READ = 1  # libev EV_READ


def _step(loop) -> None:
    """One non-blocking turn of the loop. The tick treats this frame as a boundary: user
    callbacks below it may be interrupted."""
    loop._stepping = True
    try:
        loop._stopping = False
        loop._run_once()
    finally:
        loop._stepping = False


def _loop_class():
    import asyncio
    import selectors
    from asyncio import events

    class _PollingSelector(selectors.DefaultSelector):
        """Never blocks: the waiting is done cooperatively before `_run_once` is called."""

        def select(self, timeout=None):
            return super().select(0)

    class KernelEventLoop(asyncio.SelectorEventLoop):
        def __init__(self, publisher, kernel):
            self._stepping = False  # inside _run_once (callbacks are running)
            self._parked = None  # the idle driver's Waiter while it waits for work
            self._nudged = False
            super().__init__(_PollingSelector())
            self._publisher = publisher
            self._kernel = kernel
            self._drivers = 0  # greenlets driving the loop from a request (await cells)
            self._idle = gevent.event.Event()  # set while no cell runs
            self._idle.set()
            self._driver = None

        # ---- output routing ------------------------------------------------------------------
        def _call_soon(self, callback, args, context):
            if not self._stepping:
                self._wake()
            return super()._call_soon(_routed, (self._publisher, callback, *args), context)

        def call_at(self, when, callback, *args, context=None):
            if not self._stepping:
                self._wake()
            return super().call_at(when, _routed, self._publisher, callback, *args, context=context)

        def _wake(self) -> None:
            # scheduled from outside a turn (a cell, a comm handler): the parked idle driver
            # must recompute its deadline. Other threads wake it through the self-pipe, which
            # call_soon_threadsafe writes to.
            w = self._parked
            if w is not None and not self._nudged and threading.get_ident() == self._thread_id:
                self._nudged = True
                get_hub().loop.run_callback(w.switch, None)

        # ---- driving -------------------------------------------------------------------------
        def _timeout(self):
            if self._ready:
                return 0
            if self._scheduled:
                return max(0.0, self._scheduled[0]._when - self.time())
            return None

        def _wait_for_work(self, timeout, idle_driver=False) -> None:
            if timeout == 0:
                gevent.sleep(0)  # let the rest of the kernel run between two turns
                return
            hub = get_hub()
            waiter = Waiter(hub)
            io = hub.loop.io(self._selector.fileno(), _READ)
            io.start(waiter.switch, None)
            timer = None
            if timeout is not None:
                timer = hub.loop.timer(timeout)
                timer.start(waiter.switch, None)
            if idle_driver:
                self._parked, self._nudged = waiter, False
            try:
                waiter.get()
            finally:
                if idle_driver:
                    self._parked = None
                io.stop()
                if timer is not None:
                    timer.stop()

        _step = _step

        def run_until_complete(self, future):
            """Drive the loop from the calling greenlet (a cell) until `future` is done."""
            if self._stepping:
                raise RuntimeError("This event loop is already running")
            future = asyncio.ensure_future(future, loop=self)
            self._drivers += 1
            try:
                while not future.done():
                    self._wait_for_work(self._timeout())
                    if not self._stepping:  # another greenlet may be in the middle of a turn
                        self._step()
            finally:
                self._drivers -= 1
                self._wake()
            return future.result()

        def _drive_idle(self) -> None:
            while True:
                k = self._kernel
                if k.executing or self._drivers or self._stepping:
                    self._idle.wait()
                    if k.executing or self._drivers:
                        gevent.sleep(0.001)  # a request drives the loop: it will finish first
                    continue
                try:
                    self._wait_for_work(self._timeout(), idle_driver=True)
                    if not (k.executing or self._drivers or self._stepping):
                        self._step()
                except BaseException:  # an uncaught error in a callback must not stop the loop
                    log.exception("asyncio loop turn failed")

        # ---- cell hooks (Kernel.cell_hooks) --------------------------------------------------
        def cell_started(self) -> None:
            self._idle.clear()

        def cell_finished(self) -> None:
            self._restore()
            self._idle.set()  # (what the cell scheduled already nudged the driver, see _wake)

        def _restore(self) -> None:
            """A cell may have replaced the thread's loop (asyncio.run, set_event_loop): undo."""
            if events._get_running_loop() is not self:
                events._set_running_loop(self)
            policy = events.get_event_loop_policy()
            if getattr(getattr(policy, "_local", None), "_loop", None) is not self:
                policy.set_event_loop(self)

        def start(self) -> None:
            events.set_event_loop(self)
            events._set_running_loop(self)
            self._thread_id = threading.get_ident()  # is_running() is True, as on ipykernel
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            self._driver = gevent.spawn(self._drive_idle)

    return KernelEventLoop, _PollingSelector


def _routed(publisher, callback, *args):
    """Run an asyncio callback (in its task's contextvars context, so what it publishes goes to
    the request that made the task; streams keep each write's parent). The tick treats this
    frame as the start of user code."""
    __tracebackhide__ = True  # noqa: F841
    return callback(*args)


_loop = None
_original_run = None


def _run(main, *args, **kwargs):
    """asyncio.run in a cell: our loop steps aside for the new loop's lifetime."""
    __tracebackhide__ = True  # noqa: F841
    from asyncio import events

    loop = _loop
    if loop is None or loop._stepping or events._get_running_loop() is not loop:
        return _original_run(main, *args, **kwargs)  # from a coroutine: asyncio's own error
    events._set_running_loop(None)
    try:
        return _original_run(main, *args, **kwargs)
    finally:
        loop._restore()


# frames the execution tick may treat as the start of user code (see interrupts.py)
TICK_BOUNDARIES = (_routed.__code__, _step.__code__, _run.__code__)


def install(publisher, kernel):
    global _loop, _original_run
    if _loop is not None:
        return _loop
    import asyncio

    loop_class, _ = _loop_class()
    _loop = loop_class(publisher, kernel)
    if kernel is not None:
        kernel.cell_hooks.append(_loop)
        kernel.asyncio_loop = _loop
    _original_run = asyncio.runners.run
    asyncio.run = asyncio.runners.run = _run
    _loop.start()
    if kernel is not None and kernel.executing:
        _loop.cell_started()  # imported by a running cell: its tasks belong to it
    return _loop


def install_on_import(publisher, kernel) -> None:
    """Install the loop now if asyncio is loaded, else right after its first import."""
    if "asyncio" in sys.modules:
        install(publisher, kernel)
        return
    sys.meta_path.insert(0, _AsyncioImportHook(lambda: install(publisher, kernel)))


class _AsyncioImportHook:
    """A meta-path finder that only watches for `import asyncio` and runs a callback once the
    module has been executed (then removes itself)."""

    def __init__(self, on_import):
        self._on_import = on_import

    def find_spec(self, name, path=None, target=None):
        if name != "asyncio":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module, on_import = spec.loader.exec_module, self._on_import

        def exec_then_install(module):
            exec_module(module)
            try:
                on_import()
            except Exception:
                log.exception("could not install the kernel's asyncio loop")

        spec.loader.exec_module = exec_then_install
        return spec

    def find_module(self, name, path=None):  # legacy finder protocol: not used
        return None


def kernel_loop():
    return _loop
