"""Keeping the hub alive while pydevd holds the thread at a breakpoint.

pydevd's suspend loop blocks on an unpatched threading.Event, so a paused cell would freeze
every greenlet. With `gui_in_use` set, pydevd calls its "GUI input hook" on each turn of that
loop; our hook (SuspendPump) parks the suspended greenlet in the hub instead, which serves the
heartbeat, control, iopub and the DAP socket. No timer and no signal involved.

How long to stay in the hub: while no DAP request is with pydevd, until one is sent (or
`max_wait`, so pydevd still sees its own state changes). While a request is out, in 1 ms turns
until it is answered (pydevd's reader thread answers most, e.g. stackTrace) or until pydevd
queued work for this thread (evaluate, variables) or resumed it (continue, next): only then is
control handed back, so pydevd never sits out its own 20 ms wait while we wait for it.

Interrupts while suspended: pydevd swallows any exception raised in the hook, so the pump turns
an interrupt into "resume this thread + pending interrupt"; the execution tick raises the
KeyboardInterrupt at the next safe point in user code, which ends the cell.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import gevent
from gevent.event import Event

log = logging.getLogger("geokernel.debugger.pump")


class SuspendPump:
    def __init__(self, tick=None, max_wait: float = 0.1, poll: float = 0.001):
        self._tick = tick  # interrupts.ExecutionTick (pending_interrupt), optional in tests
        self.max_wait = max_wait
        self.poll = poll
        self._wake = Event()
        self._py_db = None
        self._busy: Callable[[], bool] = lambda: False  # a DAP request awaits its response
        self.suspended = False  # True while a greenlet sits in pydevd's suspend loop

    def install(self, py_db, busy: Callable[[], bool]) -> None:
        from pydev_ipython.inputhook import set_inputhook  # pydevd's (private) hook registry

        self._py_db, self._busy = py_db, busy
        set_inputhook(self)
        py_db.gui_in_use = True  # the suspend loop calls the hook (and never activates a GUI)

    def wake(self) -> None:
        """A request went to pydevd."""
        self._wake.set()

    def __call__(self) -> None:
        if gevent.getcurrent() is gevent.get_hub():
            return  # a hub callback hit a breakpoint: nothing can yield from the hub itself
        self.suspended = True
        try:
            if self._tick is not None and self._tick.pending_interrupt:
                self._resume()  # SIGINT landed inside pydevd's frames (see interrupts.py)
                return
            self._serve_hub()
        except KeyboardInterrupt:  # thrown into the parked greenlet by an interrupt
            if self._tick is not None:
                self._tick.pending_interrupt = True
            self._resume()
        except BaseException:  # pydevd would swallow it anyway; never lose it silently
            log.exception("suspend pump interrupted")
        finally:
            self.suspended = False

    def _serve_hub(self) -> None:
        deadline = time.monotonic() + self.max_wait
        while True:
            if self._busy():
                if self._pydevd_has_work():
                    return
                gevent.sleep(self.poll)
            else:
                self._wake.clear()
                self._wake.wait(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

    def _pydevd_has_work(self) -> bool:
        from _pydevd_bundle.pydevd_additional_thread_info import set_additional_thread_info
        from _pydevd_bundle.pydevd_constants import STATE_SUSPEND, get_current_thread_id

        thread = threading.current_thread()
        if set_additional_thread_info(thread).pydev_state != STATE_SUSPEND:
            return True  # continue/next/step: let the suspend loop end
        queue, _event = self._py_db.get_internal_queue_and_event(get_current_thread_id(thread))
        return not queue.empty()

    @staticmethod
    def forget_step() -> None:
        """Drop a step still pending when a cell ends (`next` on its last line): it would
        otherwise stop on the first line of whatever cell runs next."""
        from _pydevd_bundle.pydevd_additional_thread_info import set_additional_thread_info
        from _pydevd_bundle.pydevd_constants import STATE_SUSPEND
        from _pydevd_bundle.pydevd_thread_lifecycle import internal_run_thread

        thread = threading.current_thread()
        info = set_additional_thread_info(thread)
        if info.pydev_step_cmd != -1 and info.pydev_state != STATE_SUSPEND:  # not a pause
            internal_run_thread(thread, set_additional_thread_info)

    def _resume(self) -> None:
        from _pydevd_bundle.pydevd_additional_thread_info import set_additional_thread_info
        from _pydevd_bundle.pydevd_thread_lifecycle import internal_run_thread

        log.info("interrupt while stopped at a breakpoint: resuming to end the cell")
        internal_run_thread(threading.current_thread(), set_additional_thread_info)
