"""One thread that stays responsive: heartbeat, control, interrupts, input, output of every
kind, shutdown and parent death, against a real kernel process. Assertions are about
behaviour (answered while the cell still runs, delivered, in order, complete), never timings."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import zmq

from conftest import collect_iopub, execute, outputs, shell_reply, start_kernel, stop_kernel, stdout_of

BUSY = "x = 0\nwhile True:\n    x += 1"
SLEEP = "import time; time.sleep(100)"
INPUT = "input('waiting? ')"
GETPASS = "import getpass; getpass.getpass('pw? ')"
BANG = "!sleep 100"
AWAIT = "import asyncio\nawait asyncio.sleep(100)"
STATES = {"busy": BUSY, "sleep": SLEEP, "input": INPUT, "getpass": GETPASS, "bang": BANG,
          "await": AWAIT}


def _start_cell(kc, code):
    msg_id = kc.execute(code, allow_stdin=True)
    # wait until the cell is really running: its execute_input has been published
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            break
    if code in (INPUT, GETPASS):
        kc.get_stdin_msg(timeout=10)
    time.sleep(0.3)
    return msg_id


def _no_reply_yet(kc, msg_id):
    try:
        while True:
            r = kc.get_shell_msg(timeout=0.01)
            if r["parent_header"].get("msg_id") == msg_id:
                return False
    except Exception:
        return True


def _hb_ping(km, timeout=5.0):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{km.hb_port}")
    try:
        s.send(b"ping")
        if s.poll(int(timeout * 1000)):
            return s.recv()
        return None
    finally:
        s.close()


def _interrupt_by_message(kc):
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)
    while True:
        r = kc.get_control_msg(timeout=10)
        if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return r


@pytest.mark.parametrize("state", ["busy", "sleep", "input"])
def test_heartbeat_and_control_answer_while_a_cell_runs(kernel, state):
    km, kc = kernel
    msg_id = _start_cell(kc, STATES[state])
    try:
        assert _hb_ping(km) == b"ping"
        ctl = kc.session.msg("kernel_info_request")
        kc.control_channel.send(ctl)
        r = kc.get_control_msg(timeout=5)
        assert r["parent_header"]["msg_id"] == ctl["header"]["msg_id"]
        assert _no_reply_yet(kc, msg_id)  # the cell was still running when both answered
    finally:
        _interrupt_by_message(kc)
        _assert_interrupted(shell_reply(kc, msg_id)["content"], state)


def _assert_interrupted(reply, state):
    if state == "bang":
        # as on ipykernel: ^C is typed on the command's terminal, the cell goes on (and ends ok)
        assert reply["status"] == "ok", reply
    else:
        assert reply["ename"] == "KeyboardInterrupt", reply


@pytest.mark.parametrize("mode", ["signal", "message"])
@pytest.mark.parametrize("state", sorted(STATES))
def test_interrupt_in_every_state(kernel, state, mode):
    km, kc = kernel
    msg_id = _start_cell(kc, STATES[state])
    if mode == "signal":
        km.interrupt_kernel() if km.kernel_spec.interrupt_mode == "signal" else \
            os.kill(km.provisioner.process.pid, signal.SIGINT)
    else:
        assert _interrupt_by_message(kc)["content"]["status"] == "ok"
    reply = shell_reply(kc, msg_id, timeout=10)
    msgs = collect_iopub(kc, msg_id)
    _assert_interrupted(reply["content"], state)
    if state == "bang":
        assert "^C" in stdout_of(msgs)
        return
    assert reply["content"]["status"] == "error"
    error = outputs(msgs, "error")[0]
    assert error["ename"] == "KeyboardInterrupt"
    # the user sees their cell, never the kernel's signal handlers or input waits
    assert not [line for line in error["traceback"] if "geokernel" in line], error["traceback"]
    r, msgs = execute(kc, "'after'")
    assert outputs(msgs, "execute_result")[0]["data"]["text/plain"] == "'after'"


def test_bang_interrupt_stops_the_child(kernel):
    km, kc = kernel
    msg_id = _start_cell(kc, "!sleep 77.5")
    pid = km.provisioner.process.pid
    kids = [p for p in psutil.Process(pid).children(recursive=True) if "77.5" in " ".join(p.cmdline())]
    assert kids
    _interrupt_by_message(kc)
    shell_reply(kc, msg_id, timeout=10)
    gone, alive = psutil.wait_procs(kids, timeout=5)
    assert not alive


def test_interrupt_while_idle_is_harmless(kernel):
    km, kc = kernel
    os.kill(km.provisioner.process.pid, signal.SIGINT)
    _interrupt_by_message(kc)
    time.sleep(0.2)
    r, msgs = execute(kc, "'still here'")
    assert r["content"]["status"] == "ok"


def test_bang_commands_stream_and_set_exit_code(kernel):
    _, kc = kernel
    _, msgs = execute(kc, "!for i in 1 2 3; do echo line$i; sleep 0.3; done")
    streams = [c["text"] for c in outputs(msgs, "stream")]
    assert "".join(streams) == "line1\r\nline2\r\nline3\r\n"  # a terminal's line ends
    assert len(streams) >= 2  # arrived while the command ran, not all at the end
    _, msgs = execute(kc, "!exit 3\nprint(_exit_code)")
    assert stdout_of(msgs).strip().endswith("3")
    _, msgs = execute(kc, "out = !printf 'a\\nb\\n'\nprint(list(out))")
    assert stdout_of(msgs).strip() == "['a', 'b']"
    _, msgs = execute(kc, "!!echo bang2")
    assert "bang2" in outputs(msgs, "execute_result")[0]["data"]["text/plain"]
    _, msgs = execute(kc, "r = %sx echo sx-works\nprint(r)")
    assert "sx-works" in stdout_of(msgs)
    _, msgs = execute(kc, "%%bash\necho from bash\necho err >&2")
    assert stdout_of(msgs) == "from bash\n" and stdout_of(msgs, "stderr") == "err\n"
    _, msgs = execute(kc, "print(get_ipython().getoutput('echo go'))")
    assert "go" in stdout_of(msgs)


def test_fd_level_output_is_captured_complete(kernel):
    _, kc = kernel
    _, msgs = execute(kc, "import os; rc = os.system('seq 1 2000000'); print('rc', rc)", timeout=120)
    text = stdout_of(msgs)
    lines = text.splitlines()
    assert lines[-1] == "rc 0"
    assert lines[:-1] == [str(i) for i in range(1, 2000001)]


def test_fd_output_from_subprocess_and_c_in_order(kernel):
    _, kc = kernel
    code = ("import subprocess, os, sys\nprint('py1', flush=True)\n"
            "subprocess.run(['echo', 'child'])\nos.write(2, b'raw-err\\n')\nprint('py2')")
    _, msgs = execute(kc, code)
    assert stdout_of(msgs) == "py1\nchild\npy2\n"
    assert stdout_of(msgs, "stderr") == "raw-err\n"


def test_thread_output_goes_to_the_current_request(kernel):
    # ipykernel 7's policy (issue 10 item 4, tests/test_threads.py): a thread prints into the
    # request being handled when it writes, not the cell that started it
    _, kc = kernel
    code = ("import threading, time\n"
            "def later():\n    time.sleep(0.5)\n    print('from thread')\n"
            "t = threading.Thread(target=later); t.start()")
    first = kc.execute(code)
    shell_reply(kc, first)
    collect_iopub(kc, first)
    second = kc.execute("import time; time.sleep(1); print('second cell')")
    shell_reply(kc, second)
    got = {}
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        m = kc.get_iopub_msg(timeout=5)
        if m["msg_type"] == "stream":
            got[m["content"]["text"].strip()] = m["parent_header"]["msg_id"]
    assert got == {"from thread": second, "second cell": second}


def test_many_thread_writes_arrive_in_order(kernel):
    _, kc = kernel
    # one write per line: print() itself writes the text and the newline separately
    code = ("import threading, sys\n"
            "def w(k):\n    for i in range(2000):\n        sys.stdout.write(f'{k}:{i}\\n')\n"
            "ts = [threading.Thread(target=w, args=(k,)) for k in range(4)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]")
    _, msgs = execute(kc, code)
    lines = stdout_of(msgs).splitlines()
    assert len(lines) == 8000
    for k in range(4):
        assert [l for l in lines if l.startswith(f"{k}:")] == [f"{k}:{i}" for i in range(2000)]


def test_shutdown_while_busy_replies_and_exits():
    for restart in (False, True):
        km, kc = start_kernel()
        try:
            proc = km.provisioner.process
            _start_cell(kc, BUSY)
            msg = kc.session.msg("shutdown_request", {"restart": restart})
            kc.control_channel.send(msg)
            r = kc.get_control_msg(timeout=5)
            assert r["content"]["restart"] is restart
            assert proc.wait(timeout=5) is not None
        finally:
            stop_kernel(km, kc)


def test_shutdown_kills_child_processes():
    km, kc = start_kernel()
    try:
        reply, msgs = execute(kc, "import subprocess; p = subprocess.Popen(['sleep', '91.5']); p.pid")
        assert reply["content"]["status"] == "ok", reply["content"]
        child = psutil.Process(int(outputs(msgs, "execute_result")[0]["data"]["text/plain"]))
        # (not cmdline(): /proc/PID/cmdline read empty right after exec in one CI run)
        assert child.ppid() == km.provisioner.process.pid and child.name() == "sleep"
        km.shutdown_kernel(now=False)
        gone, alive = psutil.wait_procs([child], timeout=5)
        assert not alive
    finally:
        stop_kernel(km, kc)


LAUNCHER = r"""
import json, os, subprocess, sys, time
conn = sys.argv[1]
p = subprocess.Popen([sys.executable, "-m", "geokernel", "-f", conn],
                     env=dict(os.environ, JPY_PARENT_PID=str(os.getpid())))
print(p.pid, flush=True)
time.sleep(100)
"""


def test_kernel_exits_when_its_parent_dies(tmp_path):
    from jupyter_client.connect import write_connection_file

    conn, _ = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1", key=b"abc")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, conn], stdout=subprocess.PIPE,
                                text=True)
    kernel_pid = int(launcher.stdout.readline())
    try:
        kernel = psutil.Process(kernel_pid)
        time.sleep(1.0)  # let the kernel start
        assert kernel.is_running()
        launcher.kill()
        launcher.wait()
        kernel.wait(timeout=10)
    finally:
        if psutil.pid_exists(kernel_pid):
            psutil.Process(kernel_pid).kill()


def _answer_prompts(kc, msg_id, answers):
    prompts = []
    for answer in answers:
        req = kc.get_stdin_msg(timeout=10)
        assert req["parent_header"]["msg_id"] == msg_id
        prompts.append(req["content"]["prompt"])
        kc.input(answer)
    return prompts


def test_pdb_and_debug_prompts_use_input_requests(kernel):
    _, kc = kernel
    msg_id = kc.execute("def f():\n    secret = 41 + 1\n    breakpoint()\n    return secret\nf()",
                        allow_stdin=True)
    prompts = _answer_prompts(kc, msg_id, ["p secret", "c"])
    assert all("db>" in p for p in prompts)  # ipdb> (IPython's Pdb) as on ipykernel
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok"
    msgs = collect_iopub(kc, msg_id)
    assert "42" in stdout_of(msgs)
    assert outputs(msgs, "execute_result")[0]["data"]["text/plain"] == "42"
    reply, _ = execute(kc, "def g():\n    hidden = 'post-mortem'\n    1/0\ng()", stop_on_error=False)
    assert reply["content"]["ename"] == "ZeroDivisionError"
    msg_id = kc.execute("%debug", allow_stdin=True)
    _answer_prompts(kc, msg_id, ["p hidden", "q"])
    shell_reply(kc, msg_id)
    assert "post-mortem" in stdout_of(collect_iopub(kc, msg_id))
