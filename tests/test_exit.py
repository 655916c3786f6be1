"""Exit like Python (issue 11, item 3): atexit handlers run at shutdown and at restart, a
hanging handler cannot keep the kernel alive, children are ended. Compared with ipykernel."""
from __future__ import annotations

import os

import psutil
import pytest
from jupyter_client.manager import KernelManager

from conftest import execute, outputs, start_kernel, stop_kernel


def _start(kernel_name):
    if kernel_name == "geokernel":
        return start_kernel()
    km = KernelManager(kernel_name=kernel_name, ip="127.0.0.1")
    km.start_kernel(env=dict(os.environ))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc

REGISTER = ("import atexit, sys\n"
            "def bye(path={path!r}):\n"
            "    print('bye')\n"
            "    sys.stdout.flush()\n"
            "    open(path, 'w').write('ran')\n"
            "atexit.register(bye)")


def _shutdown_and_wait(km, kc, restart=False):
    proc = psutil.Process(km.provisioner.process.pid)
    msg = kc.session.msg("shutdown_request", {"restart": restart})
    kc.control_channel.send(msg)
    reply = kc.get_control_msg(timeout=10)
    assert reply["content"]["restart"] is restart
    return proc.wait(timeout=15)  # bounded: a kernel that never exits fails here


@pytest.mark.parametrize("kernel_name", ["geokernel", "python3"])
@pytest.mark.parametrize("restart", [False, True])
def test_atexit_handlers_run_at_shutdown(tmp_path, kernel_name, restart):
    path = tmp_path / "atexit.txt"
    km, kc = _start(kernel_name)
    try:
        reply, _ = execute(kc, REGISTER.format(path=str(path)))
        assert reply["content"]["status"] == "ok"
        assert _shutdown_and_wait(km, kc, restart) == 0
        assert path.read_text() == "ran"
    finally:
        stop_kernel(km, kc)


def test_a_hanging_atexit_handler_cannot_keep_the_kernel_alive(tmp_path):
    km, kc = start_kernel()
    try:
        reply, msgs = execute(kc, "import atexit, subprocess, time\n"
                                  "child = subprocess.Popen(['sleep', '97.5'])\n"
                                  "atexit.register(time.sleep, 3600)\n"
                                  "child.pid")
        child = psutil.Process(int(outputs(msgs, "execute_result")[0]["data"]["text/plain"]))
        assert _shutdown_and_wait(km, kc) == 0  # ended from the next bytecode, cleanly
        assert not psutil.wait_procs([child], timeout=5)[1]  # and its children with it
    finally:
        stop_kernel(km, kc)


def test_an_atexit_handler_stuck_in_c_is_killed(tmp_path):
    km, kc = start_kernel()
    try:
        # pause() sleeps until a signal whose handler runs; the exit timer's is the last resort
        reply, _ = execute(kc, "import atexit, ctypes, signal\n"
                               "libc = ctypes.CDLL(None)\n"
                               "def stuck():\n"
                               "    signal.pthread_sigmask(signal.SIG_BLOCK, "
                               "[signal.SIGRTMIN + 12])\n"
                               "    while True:\n"
                               "        libc.pause()\n"
                               "atexit.register(stuck)")
        assert reply["content"]["status"] == "ok"
        assert _shutdown_and_wait(km, kc) is not None
    finally:
        stop_kernel(km, kc)
