"""Frontend details, side by side with ipykernel 7: debugger cell-file names JupyterLab maps to
"Cell [n]", the usage panel's CPU figure."""
from __future__ import annotations

import os
import re
import tempfile

import pytest
from jupyter_client.manager import KernelManager

from conftest import execute, stdout_of, stop_kernel

KERNELS = ("geokernel", "python3")


@pytest.fixture(scope="module", params=KERNELS)
def kc(request):
    km = KernelManager(kernel_name=request.param, ip="127.0.0.1")
    km.start_kernel(env={**os.environ})
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        client.kernel_name = request.param
        yield client
    finally:
        stop_kernel(km, client)


def _control(kc, msg_type, content):
    msg = kc.session.msg(msg_type, content)
    kc.control_channel.send(msg)
    while True:
        reply = kc.control_channel.get_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply["content"]


def _debug(kc, command, arguments=None):
    return _control(kc, "debug_request", {"seq": 1, "type": "request", "command": command,
                                          "arguments": arguments or {}})


def test_cell_files_follow_the_ipykernel_folder_convention(kc):
    _, msgs = execute(kc, "import os; print(os.getpid())")
    pid = int(stdout_of(msgs))
    info = _debug(kc, "debugInfo")["body"]
    prefix = os.path.join(tempfile.gettempdir(), f"ipykernel_{pid}") + os.sep
    assert info["tmpFilePrefix"] == prefix
    assert info["tmpFileSuffix"] == ".py"
    if kc.kernel_name == "geokernel":  # ipykernel dumps cells only after debugger initialize
        dumped = _debug(kc, "dumpCell", {"code": "a = 1\n"})["body"]["sourcePath"]
        assert re.fullmatch(re.escape(prefix) + r"\d+\.py", dumped)


def test_usage_cpu_is_measured_between_requests(kc):
    _control(kc, "usage_request", {})  # the first figure has nothing to compare with
    reply, _ = execute(kc, "import time\nt = time.process_time()\n"
                           "while time.process_time() - t < 0.5: pass")
    assert reply["content"]["status"] == "ok"
    usage = _control(kc, "usage_request", {})
    assert usage["kernel_cpu"] > 0
    assert usage["pid"] > 0 and usage["kernel_memory"] > 0
