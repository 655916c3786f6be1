"""The libzmq fallback transport (GEOKERNEL_TRANSPORT=zmq) behaves like the default one."""
from __future__ import annotations

import os
import time
import uuid

import pytest
import zmq
from jupyter_client.session import Session

from conftest import collect_iopub, execute, outputs, shell_reply, start_kernel, stop_kernel, stdout_of
from test_process import kernel_threads


@pytest.fixture(scope="module")
def zmq_kernel():
    km, kc = start_kernel(env={"GEOKERNEL_TRANSPORT": "zmq"})
    yield km, kc
    stop_kernel(km, kc)


def test_uses_libzmq_and_no_extra_python_thread(zmq_kernel):
    km, kc = zmq_kernel
    _, msgs = execute(kc, "import sys, threading; print('zmq' in sys.modules, threading.active_count())")
    assert stdout_of(msgs).strip() == "True 1"
    names = kernel_threads(km.provisioner.process.pid)
    assert len([n for n in names if not n.startswith("ZMQbg")]) == 1, names
    assert len([n for n in names if n.startswith("ZMQbg")]) <= 2, names  # libzmq's own


def test_execute_streams_and_order(zmq_kernel):
    _, kc = zmq_kernel
    reply, msgs = execute(kc, "print('a'); 6 * 7")
    assert [m["msg_type"] for m in msgs] == ["status", "execute_input", "stream", "execute_result", "status"]
    assert outputs(msgs, "execute_result")[0]["data"]["text/plain"] == "42"
    _, msgs = execute(kc, "for i in range(20000): print(i)")
    assert stdout_of(msgs) == "".join(f"{i}\n" for i in range(20000))


def test_heartbeat_and_interrupt(zmq_kernel):
    km, kc = zmq_kernel
    assert kc.hb_channel.is_beating()
    msg_id = kc.execute("while True: pass")
    time.sleep(0.5)
    kc.control_channel.send(kc.session.msg("interrupt_request", {}))
    assert shell_reply(kc, msg_id, timeout=10)["content"]["ename"] == "KeyboardInterrupt"
    collect_iopub(kc, msg_id)


def test_comm_buffers_round_trip(zmq_kernel):
    _, kc = zmq_kernel
    execute(kc, "import comm\n"
                "def t(c, m):\n    c.on_msg(lambda msg: c.send({'n': len(msg['buffers'])}, buffers=msg['buffers']))\n"
                "comm.get_comm_manager().register_target('zecho', t)")
    cid = uuid.uuid4().hex
    kc.shell_channel.send(kc.session.msg("comm_open", {"comm_id": cid, "target_name": "zecho", "data": {}}))
    payload = os.urandom(100_000)
    msg = kc.session.msg("comm_msg", {"comm_id": cid, "data": {}})
    kc.session.send(kc.shell_channel.socket, msg, buffers=[payload])
    echo = [m for m in collect_iopub(kc, msg["header"]["msg_id"]) if m["msg_type"] == "comm_msg"][0]
    assert [bytes(b) for b in echo["buffers"]] == [payload]


def test_bad_signature_dropped(zmq_kernel):
    km, kc = zmq_kernel
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{km.shell_port}")
    try:
        bad = Session(key=b"wrong", check_pid=False)
        sock.send_multipart(bad.serialize(bad.msg("execute_request", {"code": "zhacked = 1"})))
        time.sleep(0.3)
    finally:
        sock.close()
    _, msgs = execute(kc, "print('zhacked' in dir())")
    assert stdout_of(msgs).strip() == "False"
