"""IPython's history manager without its saving thread: the kernel writes the cache out itself
after each cell (on the hub, after the reply), so the process keeps one thread."""
from __future__ import annotations

from IPython.core.history import HistoryAccessor, HistoryManager


class ThreadlessHistoryManager(HistoryManager):
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
            self.log.error("history session could not be created in %s; keeping it in memory",
                           self.hist_file, exc_info=True)
            self._switch_to_memory_history()
        self.using_thread = False
        self.save_thread = None
        instances = getattr(HistoryManager, "_instances", None)  # IPython >= 9 only
        if instances is not None:
            instances.add(self)
        elif getattr(self, "save_flag", None) is None:
            # IPython 8 sets this flag on every stored cell for its (absent) saving thread
            self.save_flag = threading.Event()

    def _switch_to_memory_history(self) -> None:
        try:
            self.db.close()
        except Exception:
            pass
        self.hist_file = ":memory:"
        self.init_db()
        self.new_session()
