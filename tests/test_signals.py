"""The tick is private (issue 11, items 1 and 1b): SIGALRM, setitimer and signal.alarm are the
user's as in plain Python (compared with ipykernel); blocking calls keep the heartbeat and
control answered and can be interrupted; C-level writes lose nothing."""
from __future__ import annotations

import time

import pytest
import zmq
from jupyter_client.manager import KernelManager

from conftest import execute, outputs, shell_reply, stdout_of


def _hb_ping(km, timeout=10.0):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{km.hb_port}")
    try:
        s.send(b"ping")
        return s.recv() if s.poll(int(timeout * 1000)) else None
    finally:
        s.close()


def _control(kc, msg_type, content=None, timeout=10):
    msg = kc.session.msg(msg_type, content or {})
    kc.control_channel.send(msg)
    while True:
        r = kc.get_control_msg(timeout=timeout)
        if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return r


def _still_running(kc, msg_id):
    try:
        while True:
            r = kc.get_shell_msg(timeout=0.01)
            if r["parent_header"].get("msg_id") == msg_id:
                return False
    except Exception:
        return True


@pytest.fixture(scope="module")
def ipy():
    km = KernelManager(kernel_name="python3", ip="127.0.0.1")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        km.cleanup_resources()


USER_TIMER = """
import signal, time
fired = []
signal.signal(signal.SIGALRM, lambda s, f: fired.append(s))
signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
t = time.monotonic()
while len(fired) < 5 and time.monotonic() - t < 10:
    sum(range(1000))
print(len(fired), signal.getitimer(signal.ITIMER_REAL)[1])
"""

ALARM = """
import signal, time
class Rang(Exception): pass
def ring(s, f): raise Rang("alarm")
signal.signal(signal.SIGALRM, ring)
print(signal.alarm(5), signal.alarm(1))
time.sleep(10)
"""


def test_user_itimer_survives_cells_and_kernel_keeps_working(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, USER_TIMER)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(msgs).split() == ["5", "0.05"]
    # the next cell's start and end must not wipe the user's timer (the tick used to)
    reply, msgs = execute(kc, "import time; time.sleep(0.3); print(len(fired) > 5, "
                              "signal.getitimer(signal.ITIMER_REAL)[1])")
    assert stdout_of(msgs).split() == ["True", "0.05"]
    reply, _ = execute(kc, "signal.setitimer(signal.ITIMER_REAL, 0, 0)\n"
                           "signal.signal(signal.SIGALRM, signal.SIG_DFL)")
    assert reply["content"]["status"] == "ok"
    # cells longer than many ticks, with SIGALRM at SIG_DFL: the kernel must survive them
    msg_id = kc.execute("x = 0\nt = time.monotonic()\nwhile time.monotonic() - t < 1.0:\n    x += 1")
    time.sleep(0.3)
    assert _hb_ping(km) == b"ping"
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok"
    reply, msgs = execute(kc, "time.sleep(0.5); print('alive')")
    assert stdout_of(msgs) == "alive\n" and km.is_alive()


def test_signal_alarm_as_on_ipykernel(kernel, ipy):
    results = []
    for _, kc in (kernel, ipy):
        reply, msgs = execute(kc, ALARM, stop_on_error=False)
        results.append((reply["content"]["status"], reply["content"].get("ename"),
                        stdout_of(msgs).split()))
    assert results[0] == results[1] == ("error", "Rang", ["0", "5"])


BLOCKING = {
    "subprocess.run": "import subprocess; subprocess.run(['sleep', '3'])",
    "os.waitpid": "import os, subprocess; p = subprocess.Popen(['sleep', '3']); os.waitpid(p.pid, 0)",
    "Process.join": "import multiprocessing as mp, time\n"
                    "p = mp.Process(target=time.sleep, args=(3,)); p.start(); p.join()",
    "pipe read": "import os, subprocess; r, w = os.pipe()\n"
                 "p = subprocess.Popen(['sh', '-c', 'sleep 3; echo x'], stdout=w); os.close(w)\n"
                 "os.read(r, 10)",
    "select": "import select, os; r, w = os.pipe(); select.select([r], [], [], 3)",
    "socket recv": "import socket; a, b = socket.socketpair(); a.settimeout(3)\n"
                   "try:\n    a.recv(1)\nexcept socket.timeout:\n    pass",
    "Queue.get": "import queue\ntry:\n    queue.Queue().get(timeout=3)\nexcept queue.Empty:\n    pass",
    "Event.wait": "import threading; threading.Event().wait(3)",
    "Lock.acquire": "import threading; l = threading.Lock(); l.acquire()\n"
                    "threading.Timer(3, l.release).start(); l.acquire()",
}


@pytest.mark.parametrize("call", sorted(BLOCKING))
def test_heartbeat_and_control_answer_during_blocking_calls(kernel, call):
    km, kc = kernel
    msg_id = kc.execute(BLOCKING[call])
    time.sleep(0.5)
    assert _hb_ping(km) == b"ping"
    assert _control(kc, "kernel_info_request")["content"]["status"] == "ok"
    assert _still_running(kc, msg_id)  # answered while the call was still blocked
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok"


@pytest.mark.parametrize("how", ["message", "signal"])
def test_interrupt_subprocess_run(kernel, how):
    km, kc = kernel
    msg_id = kc.execute("import subprocess; subprocess.run(['sleep', '30'])")
    time.sleep(0.5)
    if how == "message":
        assert _control(kc, "interrupt_request")["content"]["status"] == "ok"
    else:
        km.interrupt_kernel()  # the kernelspec's interrupt_mode is signal
    reply = shell_reply(kc, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"


SLOW_READER = ("import sys, time, hashlib\nh = hashlib.md5(); n = 0\nwhile True:\n"
               "    b = sys.stdin.buffer.read1(65536)\n    if not b: break\n"
               "    h.update(b); n += len(b); time.sleep(0.005)\nprint(n, h.hexdigest())")

C_WRITE = f"""
import ctypes, hashlib, os, subprocess, sys
data = os.urandom(8_000_000)
p = subprocess.Popen([sys.executable, "-c", {SLOW_READER!r}], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
libc = ctypes.CDLL(None, use_errno=True)
libc.fdopen.restype = ctypes.c_void_p
f = ctypes.c_void_p(libc.fdopen(os.dup(p.stdin.fileno()), b"wb"))
p.stdin.close(); p.stdin = None
written = libc.fwrite(data, 1, len(data), f); libc.fclose(f)
n, digest = p.communicate()[0].decode().split()
print(written, n, digest == hashlib.md5(data).hexdigest())
"""

PY_WRITE = f"""
import hashlib, os, subprocess, sys
data = os.urandom(8_000_000)
p = subprocess.Popen([sys.executable, "-c", {SLOW_READER!r}], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE)
p.stdin.write(data)  # a BufferedWriter: retries short writes and EINTR
n, digest = p.communicate()[0].decode().split()
print(n, digest == hashlib.md5(data).hexdigest())
"""


def test_big_c_level_write_to_a_slow_pipe_loses_nothing(kernel):
    _, kc = kernel
    reply, msgs = execute(kc, C_WRITE, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stdout_of(msgs).split() == ["8000000", "8000000", "True"]
    reply, msgs = execute(kc, PY_WRITE, timeout=60)
    assert stdout_of(msgs).split() == ["8000000", "True"]


def test_no_itimer_real_is_armed_while_a_cell_runs(kernel):
    _, kc = kernel
    reply, msgs = execute(kc, "import signal, time; time.sleep(0.1)\n"
                              "print(signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))")
    assert stdout_of(msgs) == "True\n"
