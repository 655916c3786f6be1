"""The completer warm-up in idle time (geokernel/ipython/warmup.py): a step gives way to a
request at once, and a started kernel has a warm completer once it has been idle a moment."""
from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from geokernel.ipython.warmup import CompleterWarmup, request_sockets
from geokernel.posix_timer import PosixTimer

from conftest import execute, start_kernel, stdout_of, stop_kernel


class _Kernel:
    executing = False


class _SlowCompleter:
    """A completion that would run for `seconds` (jedi's first inference, exaggerated)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.finished = False

    def completions(self, code, pos):
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            pass
        self.finished = True
        return iter(())


@pytest.fixture()
def listening():
    server = socket.create_server(("127.0.0.1", 0))
    yield server, server.getsockname()[1]
    server.close()


def _step(warmup, code="pri"):
    timer = PosixTimer(warmup.signo)
    previous = signal.signal(warmup.signo, warmup._on_timer)
    try:
        return warmup._step(code, timer)
    finally:
        timer.close()
        signal.signal(warmup.signo, previous)


def test_a_step_gives_way_when_a_request_arrives(listening):
    server, port = listening
    completer = _SlowCompleter(20)
    warmup = CompleterWarmup(_Kernel(), completer, {"shell": port, "hb": 1})
    assert request_sockets({"shell": port}) == [server.fileno()]
    client = socket.create_connection(("127.0.0.1", port))  # a client connects: readable
    try:
        assert _step(warmup) is False  # aborted, not run to its end
        assert not completer.finished
    finally:
        client.close()


def test_a_step_runs_to_its_end_when_nothing_arrives(listening):
    _, port = listening
    completer = _SlowCompleter(0.2)
    warmup = CompleterWarmup(_Kernel(), completer, {"shell": port})
    assert _step(warmup) is True and completer.finished


def test_the_heartbeat_is_no_request(listening):
    server, port = listening
    assert request_sockets({"hb": port}) == []


def _value(kc, expr):
    reply, msgs = execute(kc, f"import json as _j; print(_j.dumps({expr}))")
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads(stdout_of(msgs))


def test_a_started_kernel_warms_its_completer_after_its_first_cell(tmp_path):
    km, kc = start_kernel()
    try:
        # before any cell (a silent execute does not count, as IPython's post_run_cell):
        # nothing started, so a kernel nobody uses stays small
        seen = tmp_path / "state"
        reply, _ = execute(kc, f"open({str(seen)!r}, 'w').write(repr("
                               "get_ipython().kernel.completer_warmup.done))", silent=True)
        assert reply["content"]["status"] == "ok"
        assert seen.read_text() == "None"
        # the first cell is answered at once (the warm-up waits for idle time after it)
        assert _value(kc, "1 + 1") == 2
        state = "get_ipython().kernel.completer_warmup"
        deadline = time.monotonic() + 120
        while not _value(kc, f"{state}.done.is_set()"):
            assert time.monotonic() < deadline, "the warm-up never finished"
            time.sleep(1.5)  # idle time for the next step
        assert _value(kc, "len(__import__('os').listdir('/proc/self/task'))") == 1
        reply = kc.complete("pri", reply=True, timeout=30)
        assert "print" in reply["content"]["matches"]
    finally:
        stop_kernel(km, kc)
