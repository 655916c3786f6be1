"""Child processes: multiprocessing workers (fork, forkserver, spawn) and os.fork() children
print into the cell that started them; a forked child gets plain-Python signal handling and
cannot act on the kernel's sockets; Pool/Process termination behaves as in plain Python."""
from __future__ import annotations

import pytest

from compare_kernels import kernel_fixture, run, stream_text

kernel = kernel_fixture()
geokernel_only = kernel_fixture(kernels=("geokernel",))

SETUP = ("import multiprocessing as mp, os, sys, signal, time\n"
         "def f(x):\n    print('worker', x, flush=True)\n    return x * x\n"
         "def bad():\n    raise ValueError('in child')\n"
         "def sleeper():\n    time.sleep(100)\n")


def _lines(msgs, name="stdout"):
    return sorted(stream_text(msgs, name).splitlines())


def test_fork_pool_map_output(kernel):
    name, kc = kernel
    run(kc, SETUP)
    reply, msgs = run(kc, "with mp.get_context('fork').Pool(2) as p:\n    print(sorted(p.map(f, range(4))))")
    assert reply["status"] == "ok"
    if name == "python3":
        # ipykernel sends each write of each worker as it comes: the workers' lines interleave
        # character by character ("worker" "worker" " " " " "1" "0" ...); geokernel keeps lines
        assert sorted(stream_text(msgs)) == sorted("[0, 1, 4, 9]\nworker 0\nworker 1\nworker 2\nworker 3\n")
        return
    assert _lines(msgs) == ["[0, 1, 4, 9]", "worker 0", "worker 1", "worker 2", "worker 3"], name
    # the result is printed after the pool returned: it comes after every worker line
    assert stream_text(msgs).endswith("[0, 1, 4, 9]\n")


def test_fork_children_printing_at_once_keep_whole_lines(geokernel_only):
    """Two forked children print many multi-argument lines at the same time: every line arrives
    whole (print writes each argument separately; a child writes a line in one write()).
    geokernel only: ipykernel interleaves the workers' writes (see the test above)."""
    name, kc = geokernel_only
    run(kc, SETUP)
    code = ("pids = []\n"
            "for c in 'ab':\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        for i in range(300):\n"
            "            print('child', c, i, 'end')\n"
            "        os._exit(0)\n"
            "    pids.append(pid)\n"
            "for pid in pids: os.waitpid(pid, 0)\n")
    _, msgs = run(kc, code, timeout=60)
    lines = stream_text(msgs).splitlines()
    expected = sorted(f"child {c} {i} end" for c in "ab" for i in range(300))
    assert sorted(lines) == expected, [line for line in lines if not line.endswith(" end")][:5]


def test_default_context_pool_and_terminate(kernel):
    name, kc = kernel
    run(kc, SETUP)
    # the Linux default before 3.14 is fork: `with Pool()` used to hang (inherited SIGTERM handler)
    reply, msgs = run(kc, "with mp.Pool(2) as p:\n    r = p.map(f, [5])\nprint('done', r)", timeout=60)
    assert reply["status"] == "ok" and "done [25]\n" in stream_text(msgs), (name, reply)
    reply, msgs = run(kc, "p = mp.Pool(2); p.map(f, [7]); p.terminate(); p.join(); print('pool terminated')",
                      timeout=60)
    assert reply["status"] == "ok" and _lines(msgs) == ["pool terminated", "worker 7"], name


def test_process_terminate(kernel):
    name, kc = kernel
    run(kc, SETUP)
    _, msgs = run(kc, "q = mp.get_context('fork').Process(target=sleeper); q.start(); time.sleep(0.2)\n"
                      "q.terminate(); q.join(10); print('exitcode', q.exitcode)", timeout=60)
    assert stream_text(msgs) == "exitcode -15\n", name


def test_child_traceback_reaches_the_cell(kernel):
    name, kc = kernel
    run(kc, SETUP)
    _, msgs = run(kc, "q = mp.get_context('fork').Process(target=bad); q.start(); q.join(); print('exit', q.exitcode)")
    err = stream_text(msgs, "stderr")
    assert "Traceback (most recent call last)" in err and err.rstrip().endswith("ValueError: in child"), (name, err)
    assert stream_text(msgs) == "exit 1\n"


def test_bare_fork_child_output_and_signals(kernel):
    name, kc = kernel
    run(kc, SETUP)
    code = ("pid = os.fork()\n"
            "if pid == 0:\n"
            "    ok = (signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "          and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n"
            "    print('fork child', ok)\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0); print('parent')")
    _, msgs = run(kc, code)
    assert stream_text(msgs) == "fork child True\nparent\n", name


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawn_and_forkserver_output(kernel, method):
    name, kc = kernel
    run(kc, SETUP)
    _, msgs = run(kc, f"ctx = mp.get_context({method!r}); q = ctx.Process(target=print, args=('from {method}',))\n"
                      "q.start(); q.join(); print('exit', q.exitcode)", timeout=60)
    if name == "python3":
        # ipykernel: a spawned interpreter writes to the fd ipykernel watches from a thread; the
        # line reaches the cell or only the server's terminal depending on timing
        assert stream_text(msgs).endswith("exit 0\n")
        return
    assert stream_text(msgs) == f"from {method}\nexit 0\n", name


def test_fork_child_that_returns_into_the_kernel(geokernel_only):
    """A child that forgets os._exit runs on to the end of the cell; it must not answer the
    request (one reply only) nor read the next ones (the kernel keeps working). geokernel only:
    ipykernel's child runs on as a second kernel on copies of the sockets."""
    name, kc = geokernel_only
    run(kc, SETUP)
    msg_id = kc.execute("parent_pid = os.getpid()\npid = os.fork()\nprint('child' if pid == 0 else 'parent')\n"
                        "if pid: os.waitpid(pid, 0)")
    replies = []
    import queue

    while True:
        try:
            m = kc.get_shell_msg(timeout=3)
        except queue.Empty:
            break
        if m["parent_header"].get("msg_id") == msg_id:
            replies.append(m)
    assert len(replies) == 1 and replies[0]["content"]["status"] == "ok"
    for i in range(5):
        _, msgs = run(kc, f"print(os.getpid() == parent_pid, {i})")
        assert stream_text(msgs) == f"True {i}\n"
