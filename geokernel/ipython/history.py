"""IPython's history manager without its saving thread: the kernel writes the cache out itself
after each cell (on the hub, after the reply), so the process keeps one thread.

A write that fails (read-only, locked or broken database) never reaches the user's cell and
never blocks it: SQLite waits for no lock after start-up, a failure is logged once on the
kernel's log, and the unwritten entries stay cached (bounded) for the next attempt."""
from __future__ import annotations

import logging

from IPython.core.history import HistoryAccessor, HistoryManager

log = logging.getLogger("geokernel.history")


class ThreadlessHistoryManager(HistoryManager):
    max_pending = 10_000  # cached entries kept for retry while writes fail; older ones drop
    warn_after = 3  # consecutive failed writes before the one warning on the kernel's log

    def __init__(self, shell, config=None, **traits):
        # HistoryManager.__init__ starts HistorySavingThread; run the accessor's set-up instead
        # and repeat the rest of HistoryManager's (small) initialisation here.
        HistoryAccessor.__init__(self, shell=shell, config=config, **traits)
        import threading

        self.db_input_cache_lock = threading.Lock()
        self.db_output_cache_lock = threading.Lock()
        try:
            self.new_session()
        except Exception:
            log.error("history session could not be created in %s; keeping it in memory",
                      self.hist_file, exc_info=True)
            self._switch_to_memory_history()
        self.using_thread = False
        self.save_thread = None
        self._failures = 0
        self._warned = False
        self._no_busy_wait()
        instances = getattr(HistoryManager, "_instances", None)  # IPython >= 9 only
        if instances is not None:
            instances.add(self)
        elif getattr(self, "save_flag", None) is None:
            # IPython 8 sets this flag on every stored cell for its (absent) saving thread
            self.save_flag = threading.Event()

    def _no_busy_wait(self) -> None:
        # after the session row is in: a locked database fails at once instead of blocking the
        # only thread for sqlite's timeout (the entries are retried after the next cell)
        try:
            self.db.execute("PRAGMA busy_timeout = 0")
        except Exception:
            pass

    def writeout_cache(self, conn=None) -> None:
        # IPython's version prints into the running cell on a duplicate line number and empties
        # the caches even when the write failed; each cache here is emptied once written
        import sqlite3

        if not self.enabled:
            return
        if conn is None:
            conn = self.db
        with self.db_input_cache_lock:
            try:
                self._write(self.db_input_cache, self._writeout_input_cache, conn)
            except sqlite3.IntegrityError:
                self.new_session(conn)
                log.warning("history line numbers were not unique in %s: moved to session %s",
                            self.hist_file, self.session_number)
                self._write(self.db_input_cache, self._writeout_input_cache, conn, unique=False)
        with self.db_output_cache_lock:
            self._write(self.db_output_cache, self._writeout_output_cache, conn, unique=False)

    def _write(self, cache: list, write, conn, unique: bool = True) -> None:
        import sqlite3

        if not cache:
            return
        try:
            write(conn)  # one transaction: all or nothing
        except sqlite3.IntegrityError:
            if unique:
                raise
            cache.clear()  # not storable in this session: dropped, as IPython does
            return
        except Exception as e:
            del cache[:-self.max_pending]
            # kernels sharing one database lock it briefly: only a failure that lasts is news
            self._failures += 1
            if self._failures == self.warn_after and not self._warned:
                self._warned = True
                log.warning("history could not be written to %s (%s: %s); retrying after later "
                            "cells, further failures are not logged",
                            self.hist_file, type(e).__name__, e)
            else:
                log.debug("history write failed: %s", e)
            return
        cache.clear()
        self._failures = 0

    def _switch_to_memory_history(self) -> None:
        try:
            self.db.close()
        except Exception:
            pass
        self.hist_file = ":memory:"
        self.init_db()
        self.new_session()
