"""Output as a user's code sees it, side by side with ipykernel 7 (kernel "python3"): logging,
file descriptors, formatter errors, empty results, output before a blocking C call, comm
targets, strict JSON. Every test drives real kernel processes through jupyter_client."""
from __future__ import annotations

import os
import queue
import tempfile
import uuid

import pytest
from jupyter_client.manager import KernelManager

from conftest import collect_iopub, execute, outputs, shell_reply, start_kernel, stop_kernel, stdout_of

KERNELS = ("geokernel", "python3")


def _start(name):
    km = KernelManager(kernel_name=name, ip="127.0.0.1")
    km.start_kernel(env={**os.environ})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except Exception:
        stop_kernel(km, kc)
        raise
    return km, kc


@pytest.fixture(scope="module")
def kernels():
    started = {}
    try:
        for name in KERNELS:
            started[name] = _start(name)
        yield {name: kc for name, (km, kc) in started.items()}
    finally:
        for km, kc in started.values():
            stop_kernel(km, kc)


def _streams(msgs):
    """(name, text) of each stream, with consecutive same-name texts joined (batching differs)."""
    out = []
    for c in outputs(msgs, "stream"):
        if out and out[-1][0] == c["name"]:
            out[-1] = (c["name"], out[-1][1] + c["text"])
        else:
            out.append((c["name"], c["text"]))
    return out


def _both(kernels, code):
    return {name: execute(kc, code) for name, kc in kernels.items()}


# ---- 1. logging ---------------------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "import logging; logging.warning('plain warning')",  # logging.lastResort
    "import logging; logging.getLogger('mylib').error('library error')",
    "import logging; logging.getLogger('mylib.sub').warning('%s and %d', 'args', 3)",
    "import logging; logging.info('below the default level')",
])
def test_user_logging_reaches_the_cell_as_on_ipykernel(kernels, code):
    res = _both(kernels, code)
    ours, theirs = (_streams(res[k][1]) for k in KERNELS)
    assert ours == theirs
    assert res["geokernel"][0]["content"]["status"] == "ok"


def test_basic_config_logging_as_on_ipykernel(kernels):
    # last among the logging tests: basicConfig stays installed in both kernels
    res = _both(kernels, "import logging\nlogging.basicConfig(level=logging.INFO)\n"
                         "logging.info('configured info')\nlogging.getLogger('lib').warning('w')")
    ours, theirs = (_streams(res[k][1]) for k in KERNELS)
    assert ours == theirs
    assert ours[-1] == ("stderr", "WARNING:lib:w\n")


def test_gui_error_is_shown_in_the_cell(kernels):
    kc = kernels["geokernel"]
    reply, msgs = execute(kc, "%gui tk")
    shown = stdout_of(msgs, "stderr") + "".join(e["evalue"] for e in outputs(msgs, "error"))
    assert "tk" in shown


def test_kernel_logger_does_not_touch_the_root_logger(kernels):
    kc = kernels["geokernel"]
    _, msgs = execute(kc, "import logging\nr = logging.getLogger()\n"
                          "g = logging.getLogger('geokernel')\n"
                          "print(len(r.handlers), g.propagate, len(g.handlers))")
    # the one root handler is basicConfig's from the test above; ours is on 'geokernel'
    assert stdout_of(msgs) == "1 False 1\n"


# ---- 2. file descriptors -----------------------------------------------------------------
def test_subprocess_and_c_output_through_fileno_in_order(kernels):
    kc = kernels["geokernel"]
    reply, msgs = execute(kc, "import sys, subprocess, ctypes\n"
                              "print('a')\n"
                              "subprocess.run(['echo', 'b'], stdout=sys.stdout, check=True)\n"
                              "print('c', end='')\n"
                              "subprocess.run(['sh', '-c', 'echo d >&2'], stderr=sys.stderr)\n"
                              "sys.stderr.flush()\n"
                              "libc = ctypes.CDLL(None)\n"
                              "libc.puts(b'e from C'); libc.fflush(None)\n"
                              "print('f')\n"
                              "print(sys.stdout.fileno(), sys.stderr.fileno())")
    assert reply["content"]["status"] == "ok"
    assert _streams(msgs) == [("stdout", "a\nb\nc"), ("stderr", "d\n"),
                              ("stdout", "e from C\nf\n1 2\n")]


def test_faulthandler_writes_into_the_cell(kernels):
    kc = kernels["geokernel"]
    reply, msgs = execute(kc, "import faulthandler\nfaulthandler.enable()\n"
                              "faulthandler.dump_traceback()\nfaulthandler.disable()\nprint('after')")
    assert reply["content"]["status"] == "ok"
    err = stdout_of(msgs, "stderr")
    assert "most recent call first" in err and "File " in err
    assert stdout_of(msgs) == "after\n"


# ---- 6. formatter errors, empty results ------------------------------------------------------
FAILING_HTML = ("class BadHtml:\n"
                "    def _repr_html_(self):\n"
                "        raise ValueError('bad html')\n"
                "    def __repr__(self):\n"
                "        return 'BadHtml()'\n")


def test_failing_repr_html_in_out_is_an_error_as_on_ipykernel(kernels):
    res = _both(kernels, FAILING_HTML + "BadHtml()")
    for name in KERNELS:
        reply, msgs = res[name]
        assert reply["content"]["status"] == "error", name
        errors = outputs(msgs, "error")
        assert [e["ename"] for e in errors] == ["ValueError"], name
        assert "bad html" in "\n".join(errors[0]["traceback"]), name
        results = outputs(msgs, "execute_result")
        assert [r["data"] for r in results] == [{"text/plain": "BadHtml()"}], name
    # ipykernel names the reply's error "NoneType" (no exception reached run_cell); we name
    # the formatter's exception
    assert res["geokernel"][0]["content"]["ename"] == "ValueError"


def test_failing_repr_html_in_display_keeps_the_cell_ok_as_on_ipykernel(kernels):
    res = _both(kernels, FAILING_HTML + "display(BadHtml())")
    for name in KERNELS:
        reply, msgs = res[name]
        assert reply["content"]["status"] == "ok", name
        assert [e["ename"] for e in outputs(msgs, "error")] == ["ValueError"], name
        assert [d["data"] for d in outputs(msgs, "display_data")] == [{"text/plain": "BadHtml()"}]


def test_empty_format_data_sends_no_execute_result_as_on_ipykernel(kernels):
    res = _both(kernels, "class Own:\n"
                         "    def _ipython_display_(self):\n"
                         "        print('displayed by itself')\n"
                         "Own()")
    for name in KERNELS:
        reply, msgs = res[name]
        assert reply["content"]["status"] == "ok"
        assert outputs(msgs, "execute_result") == [], name
        assert stdout_of(msgs) == "displayed by itself\n", name


# ---- 7. output before a call that holds the thread -------------------------------------------
@pytest.mark.parametrize("name", KERNELS)
def test_text_is_on_the_wire_while_a_c_call_holds_the_thread(kernels, name):
    """The cell prints, then blocks in libc read() on a FIFO (restarted after signals, so no
    Python code and no hub turn runs until it returns). Only once the client has received
    busy, execute_input and "starting" does it write the byte that ends the call: a kernel
    that sends late would never see the byte (the client gives up and fails)."""
    kc = kernels[name]
    fifo = os.path.join(tempfile.mkdtemp(), "gate")
    os.mkfifo(fifo)
    code = ("import ctypes, os\n"
            f"fd = os.open({fifo!r}, os.O_RDWR)\n"
            "print('starting')\n"
            "buf = ctypes.create_string_buffer(1)\n"
            "n = ctypes.CDLL(None, use_errno=True).read(fd, buf, 1)\n"
            "os.close(fd)\n"
            "print('done', n, buf.raw)")
    msg_id = kc.execute(code)
    seen = []
    try:
        while "starting" not in "".join(c["text"] for c in outputs(seen, "stream")):
            msg = kc.get_iopub_msg(timeout=20)
            if msg["parent_header"].get("msg_id") == msg_id:
                seen.append(msg)
    except queue.Empty:
        pass
    finally:
        with open(fifo, "wb") as f:  # end the call whatever happened
            f.write(b"x")
    types = [m["msg_type"] for m in seen]
    assert types[:2] == ["status", "execute_input"], types
    assert seen[0]["content"]["execution_state"] == "busy"
    assert "starting" in stdout_of(seen), f"'starting' not received during the call: {types}"
    reply = shell_reply(kc, msg_id)
    rest = collect_iopub(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(seen + rest) == "starting\ndone 1 b'x'\n"


# ---- 9. comm targets, strict JSON --------------------------------------------------------
@pytest.mark.parametrize("target", ["jupyter.widget.control", "no.such.target"])
def test_unknown_comm_target_is_closed_as_on_ipykernel(kernels, target):
    got = {}
    for name, kc in kernels.items():
        comm_id = uuid.uuid4().hex
        msg = kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": target, "data": {}})
        kc.shell_channel.send(msg)
        msgs = collect_iopub(kc, msg["header"]["msg_id"])
        got[name] = [(m["msg_type"], m["content"]) for m in msgs if m["msg_type"] != "status"]
        assert ("comm_close", {"comm_id": comm_id, "data": {}}) in got[name], name
    # ipykernel also logs "No such comm target registered" into the frontend's stderr: we don't
    assert [t for t, _ in got["geokernel"]] == ["comm_close"]
    _, msgs = execute(kernels["geokernel"], "print('still fine')")
    assert stdout_of(msgs) == "still fine\n"


def test_nan_in_output_is_sent_as_ipykernel_sends_it(kernels):
    res = _both(kernels, "display({'application/json': {'x': float('nan'), 'y': [1.5, float('-inf')]}},"
                         " raw=True)")
    data = {k: [d["data"] for d in outputs(res[k][1], "display_data")] for k in KERNELS}
    assert data["geokernel"] == data["python3"] == [
        {"application/json": {"x": "nan", "y": [1.5, "-inf"]}}]


def test_lone_surrogates_are_sent_as_valid_utf8(kernels):
    kc = kernels["geokernel"]
    reply, msgs = execute(kc, "import os\nname = os.fsdecode(b'caf\\xe9')\n"
                              "print('file', name)\nname")
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs) == "file caf\ufffd\n"
    assert outputs(msgs, "execute_result")[0]["data"]["text/plain"] == "'caf\\udce9'"  # repr


# ---- 8. fd output while idle ----------------------------------------------------------------
def _ctx_switches(pid):
    with open(f"/proc/{pid}/status") as f:
        return sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)


def test_background_fd_output_arrives_while_idle_then_polling_stops(kernels):
    kc = kernels["geokernel"]
    _wait_for_completer_warmup(kc)  # its idle-time steps wake the kernel too, then it ends
    reply, msgs = execute(kc, "import os\nos.system('(sleep 1; echo late; echo late-err >&2) &')\n"
                              "print(os.getpid())")
    assert reply["content"]["status"] == "ok"
    pid = int(stdout_of(msgs))
    msg_id = reply["parent_header"]["msg_id"]
    got = {"stdout": "", "stderr": ""}
    while got != {"stdout": "late\n", "stderr": "late-err\n"}:  # no request sent meanwhile
        msg = kc.get_iopub_msg(timeout=15)
        if msg["msg_type"] == "stream":
            assert msg["parent_header"]["msg_id"] == msg_id  # the cell that started it
            got[msg["content"]["name"]] += msg["content"]["text"]
    # the child is gone: the kernel stops polling (a 20 Hz poll would switch ~30 times here)
    import time

    time.sleep(1.0)  # the poll looks for live children every 0.5 s
    before = _ctx_switches(pid)
    time.sleep(1.5)
    # jupyter_client pings the heartbeat every second (~2 switches each): a 20 Hz poll is ~30
    assert _ctx_switches(pid) - before < 10


def _wait_for_completer_warmup(kc, timeout=120.0):
    """The completer warm-up (ipython/warmup.py) runs in idle time after the first cell and
    then stops; asking needs a cell, and the warm-up needs idle time between two asks."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        _, msgs = execute(kc, "w = get_ipython().kernel.completer_warmup\n"
                              "print(w is None or w.done.is_set())")
        if stdout_of(msgs) == "True\n":
            return
        assert time.monotonic() < deadline, "the completer warm-up never ended"
        time.sleep(1.5)


def _rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_200_mb_of_fd_output_in_bounded_memory(kernels):
    import threading

    kc = kernels["geokernel"]
    _, msgs = execute(kc, "import os; print(os.getpid())")
    pid = int(stdout_of(msgs))
    base = _rss_mib(pid)
    peak, done = [base], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib(pid))
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        reply, msgs = execute(kc, "import os\nos.system('yes | head -c 200000000')\nprint('end')",
                              timeout=120)
    finally:
        done.set()
        sampler.join()
    out = "".join(c["text"] for c in outputs(msgs, "stream") if c["name"] == "stdout")
    assert len(out) == 200_000_000 + len("end\n")
    assert out.endswith("y\nend\n")  # the child's output keeps its place before the print
    assert peak[0] <= base + 64, f"RSS {base:.0f} MiB -> peak {peak[0]:.0f} MiB"
