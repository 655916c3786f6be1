"""Cell file names the JupyterLab debugger can compute on its own.

The frontend learns `hashMethod`/`hashSeed`/`tmpFilePrefix`/`tmpFileSuffix` from debugInfo and
names a cell `prefix + murmur2(code, seed) + suffix`. The kernel compiles every cell under that
same name (CellCompiler), so a breakpoint set on the dumped file matches the running code.
Always on (cheap: ~0.07 ms per KiB of cell), so functions defined before debugging starts still hit
breakpoints. Imports nothing heavy: it is loaded with the shell.
"""
from __future__ import annotations

import os
import struct
import tempfile

from IPython.core.compilerop import CachingCompiler

HASH_SEED = 0xC70F6907  # the seed murmur2 reference implementations use; any value works
FILE_SUFFIX = ".py"
_MASK = 0xFFFFFFFF
_M = 0x5BD1E995


def murmur2(text: str, seed: int = HASH_SEED) -> int:
    """MurmurHash2 (32-bit, x86) of the UTF-8 bytes of `text`, as JupyterLab computes it."""
    data = text.encode("utf-8")
    n = len(data)
    h = (seed ^ n) & _MASK
    blocks = n // 4
    for k in struct.unpack_from(f"<{blocks}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = data[blocks * 4:]
    if tail:
        h = ((h ^ int.from_bytes(tail, "little")) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def tmp_dir() -> str:
    """Per-process directory holding dumped cells (created by the debugger when it starts).
    Named as ipykernel names its own (`ipykernel_<pid>`): JupyterLab shows "Cell [n]" instead
    of the path only for cell files under a folder that follows this convention."""
    return os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid()}")


def file_prefix() -> str:
    return tmp_dir() + os.sep


def cell_file_name(code: str) -> str:
    return f"{file_prefix()}{murmur2(code)}{FILE_SUFFIX}"


def ensure_tmp_dir() -> str:
    path = tmp_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def remove_tmp_dir() -> None:
    """At kernel exit: the dumped cells belong to this process only."""
    import shutil

    shutil.rmtree(tmp_dir(), ignore_errors=True)


class CellCompiler(CachingCompiler):
    """IPython's caching compiler with debugger-computable file names; tracebacks still say
    `Cell In[n]` because CachingCompiler.cache maps the name to the execution count."""

    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return cell_file_name(raw_code)
