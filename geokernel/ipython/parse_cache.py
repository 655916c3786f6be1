"""jedi's parse cache (parso's pickles under ~/.cache/jedi), written so that an interrupted
write cannot break completion.

parso writes each pickle in place. A write cut short (the completer warm-up aborted by a request,
a kernel killed by `shutdown_kernel(now=True)`, the OOM killer) leaves a truncated file, and from
then on every completion that needs that module returns nothing, in every kernel of that Python
(ipykernel's too: seen here, `collections.Ord` completed to nothing), until someone deletes the
file. Here a pickle is written to a temporary file and renamed into place, and a truncated or
unreadable one is treated as a cache miss and removed. parso's private functions are wrapped
only if they still have the names and shapes this was written against."""
from __future__ import annotations

import logging
import os
import pickle
import tempfile

log = logging.getLogger("geokernel.completion")


def install() -> bool:
    """Wrap parso's cache reader and writer (once); False when parso is missing or changed."""
    try:
        import parso.cache as cache
    except ImportError:
        return False
    if getattr(cache, "_geokernel_safe", False):
        return True
    load, hashed_path = (getattr(cache, name, None) for name in ("_load_from_file_system",
                                                                  "_get_hashed_path"))
    if load is None or hashed_path is None or not hasattr(cache, "_save_to_file_system"):
        return False

    def save_atomically(hashed_grammar, path, item, cache_path=None):
        target = hashed_path(hashed_grammar, path, cache_path=cache_path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(item, f, pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, target)  # readers see the old file or the whole new one
        except BaseException:  # the warm-up's abort is a BaseException too
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def load_or_miss(hashed_grammar, path, p_time, cache_path=None):
        try:
            return load(hashed_grammar, path, p_time, cache_path=cache_path)
        except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError,
                TypeError, IndexError) as e:
            bad = hashed_path(hashed_grammar, path, cache_path=cache_path)
            log.info("dropping a broken jedi cache file %s (%s)", bad, type(e).__name__)
            try:
                os.unlink(bad)
            except OSError:
                pass
            return None  # parse the module again, as parso does on a miss

    cache._save_to_file_system = save_atomically
    cache._load_from_file_system = load_or_miss
    cache._geokernel_safe = True
    return True
