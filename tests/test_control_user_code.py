"""No user code on kernel greenlets while a cell is parked mid-bytecode can deadlock the
kernel (issue 11, item 2): debug_request inspectVariables while the cell holds a Lock that a
value's __repr__ takes is answered once the lock is free, as on ipykernel; a lock held for
good gets a clear error reply; the heartbeat and control stay alive meanwhile."""
from __future__ import annotations

import os
import time

import pytest
import zmq
from jupyter_client.manager import KernelManager

from conftest import shell_reply, start_kernel, stop_kernel

SETUP = """
import threading, time
lock = threading.Lock()
class Guarded:
    def __repr__(self):
        with lock:
            return 'Guarded()'
g = Guarded()
"""
HOLD = "with lock:\n    time.sleep({seconds})\n'released'"


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


def _send_control(kc, msg_type, content):
    msg = kc.session.msg(msg_type, content)
    kc.control_channel.send(msg)
    return msg["header"]["msg_id"]


def _control_reply(kc, msg_id, timeout=30):
    while True:
        r = kc.get_control_msg(timeout=timeout)
        if r["parent_header"].get("msg_id") == msg_id:
            return r


def _hb_ping(km, timeout=10.0):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{km.hb_port}")
    try:
        s.send(b"ping")
        return s.recv() if s.poll(int(timeout * 1000)) else None
    finally:
        s.close()


def _inspect(kc):
    return _send_control(kc, "debug_request", {"type": "request", "seq": 1,
                                                "command": "inspectVariables", "arguments": {}})


def _wait_running(kc, msg_id):
    while True:
        m = kc.get_iopub_msg(timeout=30)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "execute_input":
            return


def test_inspect_variables_waits_for_the_cells_lock(both):
    name, km, kc = both
    assert shell_reply(kc, kc.execute(SETUP))["content"]["status"] == "ok"
    cell = kc.execute(HOLD.format(seconds=2))
    _wait_running(kc, cell)
    time.sleep(0.3)
    ask = _inspect(kc)
    assert _hb_ping(km) == b"ping"  # the heartbeat answers while the repr waits
    reply = _control_reply(kc, ask)
    assert reply["content"]["success"] is True
    values = {v["name"]: v["value"] for v in reply["content"]["body"]["variables"]}
    assert values["g"] == "Guarded()"  # computed once the cell let go of the lock
    assert shell_reply(kc, cell)["content"]["status"] == "ok"


def test_a_lock_held_for_good_gets_an_error_reply_and_the_cell_can_be_interrupted(kernel):
    km, kc = kernel
    assert shell_reply(kc, kc.execute(SETUP))["content"]["status"] == "ok"
    cell = kc.execute(HOLD.format(seconds=3600))
    _wait_running(kc, cell)
    time.sleep(0.3)
    ask = _inspect(kc)
    assert _hb_ping(km) == b"ping"
    reply = _control_reply(kc, ask)
    assert reply["content"]["success"] is False
    assert "lock" in reply["content"]["message"]
    # control is alive again: interrupt the cell, then the panel works
    assert _control_reply(kc, _send_control(kc, "interrupt_request", {}))["content"]["status"] == "ok"
    assert shell_reply(kc, cell)["content"]["ename"] == "KeyboardInterrupt"
    reply = _control_reply(kc, _inspect(kc))
    assert reply["content"]["success"] is True
