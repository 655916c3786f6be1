"""Process policy (issue 11, item 4): the kernel follows its launching *process*, not the
thread that launched it."""
from __future__ import annotations

import subprocess
import sys

import psutil
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

THREAD_LAUNCHER = r"""
import os, subprocess, sys, threading, time
conn = sys.argv[1]
def launch():
    p = subprocess.Popen([sys.executable, "-m", "geokernel", "-f", conn],
                         env=dict(os.environ, JPY_PARENT_PID=str(os.getpid())))
    print(p.pid, flush=True)
    time.sleep(3)  # the kernel is up and watching when this thread ends
t = threading.Thread(target=launch)
t.start()
t.join()
print("thread gone", flush=True)
time.sleep(100)
"""


def test_kernel_follows_the_launching_process_not_its_thread(tmp_path):
    conn, _ = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1", key=b"abc")
    launcher = subprocess.Popen([sys.executable, "-c", THREAD_LAUNCHER, conn],
                                stdout=subprocess.PIPE, text=True)
    kernel_pid = int(launcher.stdout.readline())
    kc = BlockingKernelClient(connection_file=conn)
    kc.load_connection_file()
    try:
        assert launcher.stdout.readline().strip() == "thread gone"
        kc.start_channels()
        kc.wait_for_ready(timeout=30)  # well after the launching thread ended
        msg_id = kc.kernel_info()
        reply = kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert psutil.Process(kernel_pid).is_running()
        launcher.kill()
        launcher.wait()
        psutil.Process(kernel_pid).wait(timeout=10)  # the process died: the kernel follows
    finally:
        kc.stop_channels()
        launcher.kill()
        launcher.wait()
        if psutil.pid_exists(kernel_pid):
            psutil.Process(kernel_pid).kill()
