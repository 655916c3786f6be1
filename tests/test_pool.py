"""geokernel-pool: kernels forked by a warm zygote, driven by jupyter_client's KernelManager
through the `geokernel-pool` kernelspec (real processes, real sockets on 127.0.0.1). Every
test leaves no kernel and no zygote behind (the fixtures check)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from geokernel.pool import client as pool
from geokernel.pool.client import ZygoteError

from conftest import execute, start_kernel, stdout_of, stop_kernel

POOL = "geokernel-pool"


def gone(pid: int) -> bool:
    """No such process, or only a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def start(env=None, **start_kw):
    """A pooled kernel through KernelManager (conftest's start_kernel with the pool's name)."""
    return start_kernel(env, kernel_name=POOL, start_kw=start_kw)


stop = stop_kernel


def value(kc, expr: str):
    reply, msgs = execute(kc, f"import json as _j; print(_j.dumps({expr}))")
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads(stdout_of(msgs))


@pytest.fixture(scope="module")
def kernels():
    """Three pooled kernels; at the end: all shut down, the zygote ended, no process left."""
    started, pids = [], set()
    try:
        for _ in range(3):
            km, kc = start()
            started.append((km, kc))
        yield started
    finally:
        for km, kc in started:
            pids.add(km.provisioner.pid if km.provisioner else None)
            stop(km, kc)
        zygote_pids = {z.pid for z in pool.zygotes()}
        pool.shutdown_all()
    leftovers = [p for p in (pids | zygote_pids) - {None} if not wait_gone(p, 10)]
    assert not leftovers, f"processes outlived the test: {leftovers}"


def test_kernels_are_forked_by_one_warm_zygote(kernels):
    zygotes = pool.zygotes()
    assert len(zygotes) == 1  # one environment: one zygote
    zygote = zygotes[0]
    assert zygote.warm["skipped"] == {}  # everything it meant to preload was there
    for km, kc in kernels:
        info = value(kc, "[__import__('os').getpid(), __import__('os').getppid(), "
                         "__import__('os').getsid(0), __import__('os').getpgid(0), "
                         "len(__import__('os').listdir('/proc/self/task')), "
                         "__import__('os').environ.get('JPY_PARENT_PID')]")
        pid, ppid, sid, pgid, threads, jpy_parent = info
        assert pid == km.provisioner.pid != zygote.pid
        assert ppid == zygote.pid       # a fork, not a new interpreter
        assert sid == pgid == pid       # its own session and group, like jupyter_client's
        assert threads == 1             # still one OS thread
        assert jpy_parent == str(os.getpid())
        assert km.is_alive() and km.provisioner.has_process


def test_each_kernel_has_its_own_state(kernels):
    (_, a), (_, b), _ = kernels
    reply, _ = execute(a, "secret = 42")
    assert reply["content"]["status"] == "ok"
    reply, msgs = execute(b, "secret")
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "NameError"
    # random was reseeded in each child: the same zygote state must not give the same numbers
    assert value(a, "__import__('random').random()") != value(b, "__import__('random').random()")
    assert value(a, "__import__('sys').argv[1:2]") == ["-f"]


def test_completion_traceback_and_display_work(kernels):
    _, kc, = kernels[0]
    reply = kc.complete("pri", reply=True, timeout=30)
    assert "print" in reply["content"]["matches"]
    reply, msgs = execute(kc, "def f():\n    return 1/0\nf()")
    assert reply["content"]["ename"] == "ZeroDivisionError"
    err = [m for m in msgs if m["msg_type"] == "error"][0]["content"]
    assert any("1/0" in line or "1\x1b" in line for line in err["traceback"])
    reply, msgs = execute(kc, "from IPython.display import HTML; HTML('<b>x</b>')")
    assert [m["content"]["data"]["text/html"] for m in msgs if m["msg_type"] == "execute_result"] == ["<b>x</b>"]


def test_magics_shell_commands_history_and_input_work(kernels):
    _, kc = kernels[0]
    reply, msgs = execute(kc, "%timeit -n1 -r1 pass\n!echo from-a-shell")
    assert reply["content"]["status"] == "ok", reply["content"]
    out = stdout_of(msgs)
    assert "from-a-shell" in out and "per loop" in out
    reply, msgs = execute(kc, "print(get_ipython().history_manager.hist_file != ':memory:', "
                              "type(get_ipython()).__name__, get_ipython().kernel is not None)")
    assert stdout_of(msgs).split() == ["True", "ZMQInteractiveShell", "True"]
    msg_id = kc.execute("print('got', input('? '))", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=30)
    assert request["content"]["prompt"] == "? "
    kc.input("yes")
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "ok"


def test_a_plot_is_shown_inline(kernels):
    _, kc = kernels[0]
    reply, msgs = execute(kc, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
                          timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert any("image/png" in m["content"].get("data", {}) for m in msgs
               if m["msg_type"] == "display_data")


def test_interrupt_stops_a_cell(kernels):
    km, kc = kernels[1]
    msg_id = kc.execute("import time; time.sleep(60)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until it runs
        m = kc.get_iopub_msg(timeout=30)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            break
    time.sleep(0.3)
    km.interrupt_kernel()  # interrupt_mode signal: SIGINT to the kernel's process group
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert value(kc, "1 + 1") == 2


def test_restart_gives_a_fresh_forked_kernel(kernels):
    km, kc = kernels[2]
    execute(kc, "before_restart = 1")
    old = km.provisioner.pid
    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=60)
    assert km.provisioner.pid != old
    assert wait_gone(old), "the old kernel is still running after the restart"
    reply, _ = execute(kc, "before_restart")
    assert reply["content"]["ename"] == "NameError"
    assert value(kc, "__import__('os').getppid()") == pool.zygotes()[0].pid


def test_killing_one_kernel_leaves_the_others_alone(kernels):
    km, kc = start()
    try:
        pid = km.provisioner.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not km.is_alive()
        # the zygote reaped it and told the provisioner how it ended
        assert km.provisioner.returncode == -signal.SIGKILL
        assert wait_gone(pid)
        for _, other in kernels:
            assert value(other, "'still here'") == "still here"
    finally:
        stop(km, kc)


def test_shutdown_exit_code_env_cwd_and_stderr(tmp_path):
    log = tmp_path / "kernel.log"
    with open(log, "w") as err:
        km, kc = start({"POOL_TEST_VAR": "yes", "GEOKERNEL_LOG_LEVEL": "INFO"},
                       cwd=str(tmp_path), stderr=err)
    try:
        assert value(kc, "__import__('os').environ.get('POOL_TEST_VAR')") == "yes"
        assert value(kc, "__import__('os').getcwd()") == str(tmp_path)
        pid = km.provisioner.pid
    finally:
        stop(km, kc)
    assert km.provisioner is None or km.provisioner.returncode in (0, None)
    assert wait_gone(pid)
    # the kernel's own log went to the stderr the launcher was given
    assert "[geokernel INFO] kernel listening" in log.read_text()


def test_zygote_refuses_bad_requests_and_keeps_serving(tmp_path):
    z = pool.zygote_for(sys.executable, dict(os.environ))
    fds = [os.open(os.devnull, os.O_RDONLY), 1, 2]
    try:
        with pytest.raises(ZygoteError, match="is not a folder"):
            z.fork(["-f", "x.json"], dict(os.environ), str(tmp_path / "missing"), fds)
        with pytest.raises(ZygoteError, match="env"):
            z.fork(["-f", "x.json"], {"A": 1}, None, fds)
        # a kernel whose connection file does not exist: forked, fails, exit code 1 comes back
        pid, pidfd = z.fork(["-f", str(tmp_path / "nope.json")], dict(os.environ), None,
                            [fds[0], fds[0], fds[0]])
        os.close(pidfd)
        assert z.exit_code(pid, timeout=30) == 1
        assert z.alive()
    finally:
        os.close(fds[0])


def test_a_preload_that_starts_a_thread_is_refused(tmp_path):
    (tmp_path / "starts_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GEOKERNEL_POOL_PRELOAD": "starts_thread"}
    with pytest.raises(ZygoteError, match="started an OS thread"):
        pool.Zygote(sys.executable, env)


def test_a_non_geokernel_argv_is_a_clear_error():
    from geokernel.pool.provisioner import _entry_args

    with pytest.raises(ZygoteError, match="-m', 'geokernel'"):
        _entry_args(["python", "-m", "ipykernel_launcher", "-f", "x"])
    assert _entry_args(["python", "-m", "geokernel", "-f", "x", "--matplotlib"]) == [
        "-f", "x", "--matplotlib"]


OWNER = textwrap.dedent("""
    import json, os, sys
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name="geokernel-pool", ip="127.0.0.1")
    km.start_kernel()
    kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
    print(json.dumps([km.provisioner.pid, km.provisioner.zygote.pid]), flush=True)
    sys.stdin.read()  # until the test kills us
""")


def test_zygote_and_kernels_die_with_their_owner():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        kernel_pid, zygote_pid = json.loads(owner.stdout.readline())
        assert not gone(kernel_pid) and not gone(zygote_pid)
        owner.kill()  # no clean-up code runs in the owner
        owner.wait()
        assert wait_gone(zygote_pid), "the zygote outlived its owner"
        assert wait_gone(kernel_pid), "a pooled kernel outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_dead_zygote_costs_only_the_next_start(kernels):
    km, kc = start()
    try:
        old = km.provisioner.zygote
        os.kill(old.pid, signal.SIGKILL)
        assert wait_gone(old.pid)
        assert value(kc, "'forked before'") == "forked before"  # its kernels live on
        km2, kc2 = start()  # the next start makes a new zygote
        try:
            assert km2.provisioner.zygote.pid != old.pid
            assert value(kc2, "__import__('os').getppid()") == km2.provisioner.zygote.pid
        finally:
            stop(km2, kc2)
        stop(km, kc)  # a kernel whose zygote is gone still shuts down (its code is unknown)
        assert not km.is_alive() if km.provisioner else True
    finally:
        if km.has_kernel:
            stop(km, kc)
    for _, other in kernels:  # the shared kernels were forked by the old zygote, too
        assert value(other, "1") == 1
