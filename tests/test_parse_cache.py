"""jedi's parse cache survives an interrupted write (geokernel/ipython/parse_cache.py): a
truncated cache file is a miss (and is removed), and a write cut short leaves the old file."""
from __future__ import annotations

import os
import pickle

import pytest

parso_cache = pytest.importorskip("parso.cache")

from geokernel.ipython import parse_cache  # noqa: E402


@pytest.fixture()
def cache_dir(tmp_path):
    assert parse_cache.install()
    return tmp_path / "cache"


def _source(tmp_path, text="x = 1\n"):
    path = tmp_path / "mod.py"
    path.write_text(text)
    return path


def test_a_truncated_cache_file_is_a_miss_and_is_removed(cache_dir, tmp_path):
    import parso

    src = _source(tmp_path)
    grammar = parso.load_grammar()
    grammar.parse(path=str(src), cache=True, cache_path=cache_dir)
    target = parso_cache._get_hashed_path(grammar._hashed, src, cache_path=cache_dir)
    with open(target, "rb") as f:
        whole = f.read()
    with open(target, "wb") as f:
        f.write(whole[: len(whole) // 2])  # what a write cut short leaves
    parso_cache.parser_cache.clear()  # a new process: only the file is left
    module = grammar.parse(path=str(src), cache=True, cache_path=cache_dir)
    assert module.get_code() == "x = 1\n"
    # parsed again and written whole (the broken file is gone)
    with open(target, "rb") as f:
        assert pickle.load(f).node.get_code() == "x = 1\n"


def test_a_write_cut_short_leaves_the_old_file(cache_dir, tmp_path, monkeypatch):
    import parso

    src = _source(tmp_path)
    grammar = parso.load_grammar()
    grammar.parse(path=str(src), cache=True, cache_path=cache_dir)
    target = parso_cache._get_hashed_path(grammar._hashed, src, cache_path=cache_dir)
    before = open(target, "rb").read()

    class Abort(BaseException):  # the completer warm-up's abort is a BaseException
        pass

    def dump_then_abort(obj, f, protocol=None):
        f.write(b"\x80\x05partial")
        raise Abort()

    monkeypatch.setattr(pickle, "dump", dump_then_abort)
    item = parso_cache._NodeCacheItem(grammar.parse("y = 2\n"), ["y = 2\n"])
    with pytest.raises(Abort):
        parso_cache._save_to_file_system(grammar._hashed, src, item, cache_path=cache_dir)
    assert open(target, "rb").read() == before
    assert not [n for n in os.listdir(os.path.dirname(target)) if n.startswith(".partial-")]
