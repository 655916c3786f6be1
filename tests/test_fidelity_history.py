"""History writes that fail (a locked database) never reach the running cell nor block it:
logged once on the kernel's own log, retried, and written once the database is free."""
from __future__ import annotations

import os
import sqlite3
import time

import pytest
from jupyter_client.manager import KernelManager

from conftest import execute, stdout_of, stop_kernel


@pytest.fixture()
def kernel_with_own_history(tmp_path):
    log_path = tmp_path / "kernel-stderr.log"
    km = KernelManager(kernel_name="geokernel", ip="127.0.0.1")
    with open(log_path, "wb") as log:
        km.start_kernel(env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}, stderr=log)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc, tmp_path / "ipython" / "profile_default" / "history.sqlite", log_path
    finally:
        stop_kernel(km, kc)


def _rows(db, pattern):
    conn = sqlite3.connect(db, timeout=5)
    try:
        return [r[0] for r in conn.execute("SELECT source_raw FROM history WHERE source_raw LIKE ?",
                                           (f"%{pattern}%",))]
    finally:
        conn.close()


def test_locked_history_database_stays_out_of_the_cell(kernel_with_own_history):
    kc, db, log_path = kernel_with_own_history
    execute(kc, "first_cell = 1")
    deadline = time.monotonic() + 20
    while not _rows(db, "first_cell"):  # the kernel writes its history about 1 s after a cell
        assert time.monotonic() < deadline, "history never written"
        time.sleep(0.2)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # now every write from the kernel fails ("locked")
    try:
        for i in range(4):
            reply, msgs = execute(kc, f"while_locked_{i} = {i}")
            assert reply["content"]["status"] == "ok"
            assert [m["msg_type"] for m in msgs] == ["status", "execute_input", "status"]
            time.sleep(1.3)  # let the kernel's history timer try (and fail) once more
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    reply, msgs = execute(kc, "print('unlocked')")
    assert stdout_of(msgs) == "unlocked\n"
    deadline = time.monotonic() + 20
    while len(_rows(db, "while_locked_")) < 4:  # the cached entries are retried
        assert time.monotonic() < deadline, "entries cached during the lock were lost"
        time.sleep(0.2)
    assert sorted(_rows(db, "while_locked_")) == [f"while_locked_{i} = {i}" for i in range(4)]
    log = log_path.read_text()
    assert log.count("history could not be written") == 1, log
