"""An interrupt at a pdb.set_trace()/breakpoint() prompt (issue 11, item 6) leaves the debugger
and the cell goes on, as on ipykernel (IPython's InterruptiblePdb), by signal and by message."""
from __future__ import annotations

import os
import queue
import time

import pytest
from jupyter_client.manager import KernelManager

from conftest import collect_iopub, execute, shell_reply, start_kernel, stdout_of, stop_kernel

SET_TRACE = "import pdb; pdb.set_trace(); after = 'ran'"
BREAKPOINT = "def f():\n    breakpoint()\n    return 'ran'\nafter = f()"


def _start(name):
    if name == "geokernel":
        return start_kernel()
    km = KernelManager(kernel_name=name, ip="127.0.0.1")
    km.start_kernel(env=dict(os.environ))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


@pytest.fixture(scope="module", params=["geokernel", "python3"])
def both(request):
    km, kc = _start(request.param)
    yield request.param, km, kc
    stop_kernel(km, kc)


def _interrupt_at_prompt(km, kc, code, how):
    msg_id = kc.execute(code, allow_stdin=True)
    assert "db>" in kc.get_stdin_msg(timeout=30)["content"]["prompt"]  # ipdb> as on ipykernel
    time.sleep(0.3)
    if how == "signal":
        km.interrupt_kernel()
    else:
        msg = kc.session.msg("interrupt_request", {})
        kc.control_channel.send(msg)
        kc.get_control_msg(timeout=10)
    reply = shell_reply(kc, msg_id)
    with pytest.raises(queue.Empty):  # no second prompt: the debugger is gone
        kc.get_stdin_msg(timeout=0.5)
    return reply, stdout_of(collect_iopub(kc, msg_id))


@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_at_set_trace_prompt_as_on_ipykernel(both, how):
    name, km, kc = both
    execute(kc, "after = None")
    reply, out = _interrupt_at_prompt(km, kc, SET_TRACE, how)
    assert reply["content"]["status"] == "ok"
    assert "--KeyboardInterrupt--" in out and "KeyboardInterrupt" in out.split("--KeyboardInterrupt--")[1]
    _, msgs = execute(kc, "print(after)")
    assert stdout_of(msgs) == "ran\n"  # the rest of the cell ran, untraced


@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_at_breakpoint_prompt(kernel, how):
    km, kc = kernel
    reply, out = _interrupt_at_prompt(km, kc, BREAKPOINT, how)
    assert reply["content"]["status"] == "ok" and "--KeyboardInterrupt--" in out
    _, msgs = execute(kc, "print(after)")
    assert stdout_of(msgs) == "ran\n"
    reply, _ = execute(kc, "sum(range(10))")  # the kernel is not left tracing or stuck
    assert reply["content"]["status"] == "ok"
