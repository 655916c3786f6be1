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
    warmup = CompleterWarmup(_Kernel(), completer, {"shell": port})
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


def test_the_heartbeat_counts_unless_skipped(listening):
    server, port = listening
    assert request_sockets({"hb": port}) == [server.fileno()]
    assert request_sockets({"hb": port}, skip=("hb",)) == []


def test_a_heartbeat_ping_waits_only_hb_grace(listening):
    """A ping (every second from jupyter_client) lets a short step finish, stops a long one."""
    server, port = listening
    client = socket.create_connection(("127.0.0.1", port))  # the hb socket is readable
    try:
        short = _SlowCompleter(0.1)
        assert _step(CompleterWarmup(_Kernel(), short, {"hb": port}, hb_grace=0.25)) is True
        long = _SlowCompleter(20)
        assert _step(CompleterWarmup(_Kernel(), long, {"hb": port}, hb_grace=0.25)) is False
        assert short.finished and not long.finished
    finally:
        client.close()


def test_the_warm_up_gives_up_after_max_aborts(listening):
    """A client that never lets the kernel be idle long enough: a bounded number of tries."""
    import gevent.event

    server, port = listening
    completer = _SlowCompleter(20)
    warmup = CompleterWarmup(_Kernel(), completer, {"shell": port}, idle_for=0.01,
                             max_aborts=3)
    warmup.done = gevent.event.Event()
    client = socket.create_connection(("127.0.0.1", port))
    try:
        warmup._idle = lambda: True  # (the listening socket stays readable: idle by fiat)
        warmup._run()
        assert warmup.aborted == 3 and not completer.finished and warmup.done.is_set()
    finally:
        client.close()


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
        assert _value(kc, f"{state}.completed")  # done, not given up (the client pings hb)
        assert _value(kc, "len(__import__('os').listdir('/proc/self/task'))") == 1
        reply = kc.complete("pri", reply=True, timeout=30)
        assert "print" in reply["content"]["matches"]
    finally:
        stop_kernel(km, kc)


class _SwallowingCompleter(_SlowCompleter):
    """As IPython's completer: a matcher's BaseException is caught and its traceback printed
    through sys.excepthook, and the completion goes on."""

    def completions(self, code, pos):
        import sys

        try:
            super().completions(code, pos)
        except BaseException:
            sys.excepthook(*sys.exc_info())
        print("after the matcher")
        return iter(())


def test_an_abort_swallowed_by_the_completer_still_counts_and_prints_nothing(listening, capsys):
    server, port = listening
    completer = _SwallowingCompleter(20)
    warmup = CompleterWarmup(_Kernel(), completer, {"shell": port})
    client = socket.create_connection(("127.0.0.1", port))
    try:
        assert _step(warmup) is False and not completer.finished
    finally:
        client.close()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_requests_during_the_warm_up_get_no_output_of_it():
    """Requests that keep arriving while the warm-up runs (and aborts) its steps: none of them
    gets a stream message (a traceback of an aborted step went to them once)."""
    from conftest import collect_iopub, shell_reply

    km, kc = start_kernel()
    try:
        assert _value(kc, "1 + 1") == 2  # the first cell: the warm-up starts after it
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            msg_id = kc.history(hist_access_type="tail", n=1)
            shell_reply(kc, msg_id, 30)
            msgs = collect_iopub(kc, msg_id, 30)
            assert [m for m in msgs if m["msg_type"] == "stream"] == []
            time.sleep(0.6)  # idle long enough for a step to start, then interrupt it
        assert "print" in kc.complete("pri", reply=True, timeout=30)["content"]["matches"]
    finally:
        stop_kernel(km, kc)
