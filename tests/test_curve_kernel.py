"""transport_encryption="required" end to end: jupyter_client 8.9+ provisions CurveZMQ keys in
the connection file, geokernel serves every channel encrypted (our ZMTP and libzmq), and a
client without the keys gets nothing."""
from __future__ import annotations

import json
import time

import pytest
import zmq
from jupyter_client.session import Session

from conftest import collect_iopub, execute, shell_reply, start_kernel, stop_kernel, stdout_of


@pytest.fixture(scope="module", params=["zmtp", "zmq"])
def curve_kernel(request):
    km, kc = start_kernel(env={"GEOKERNEL_TRANSPORT": request.param}, transport_encryption="required")
    yield km, kc
    stop_kernel(km, kc)


def test_keys_are_in_the_connection_file(curve_kernel):
    km, _ = curve_kernel
    with open(km.connection_file) as f:
        info = json.load(f)
    assert len(info["curve_publickey"]) == 40 and len(info["curve_secretkey"]) == 40


def test_cells_interrupt_and_all_channels(curve_kernel):
    km, kc = curve_kernel
    reply, msgs = execute(kc, "import sys; print(sum(range(10)), 'zmq' in sys.modules)")
    assert reply["content"]["status"] == "ok"
    msg_id = kc.execute("while True: pass")
    time.sleep(0.5)
    km.interrupt_kernel()
    assert shell_reply(kc, msg_id, timeout=20)["content"]["ename"] == "KeyboardInterrupt"
    collect_iopub(kc, msg_id)
    _, msgs = execute(kc, "for i in range(5000): print(i)")
    assert stdout_of(msgs) == "".join(f"{i}\n" for i in range(5000))
    assert kc.hb_channel.is_beating()
    msg_id = kc.execute("x = input('key? ')", allow_stdin=True)  # stdin, encrypted too
    assert kc.get_stdin_msg(timeout=10)["content"]["prompt"] == "key? "
    kc.input("v")
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok"
    control = kc.session.msg("kernel_info_request")
    kc.control_channel.send(control)
    assert kc.get_control_msg(timeout=10)["parent_header"]["msg_id"] == control["header"]["msg_id"]


def _plain(km, kind, channel):
    s = zmq.Context.instance().socket(kind)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{getattr(km, channel + '_port')}")
    return s


def test_a_client_without_keys_gets_nothing(curve_kernel):
    km, kc = curve_kernel
    session = Session(key=km.session.key)  # it even has the HMAC key: only CURVE keeps it out
    shell = _plain(km, zmq.DEALER, "shell")
    session.send(shell, "kernel_info_request", {})
    sub = _plain(km, zmq.SUB, "iopub")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    hb = _plain(km, zmq.REQ, "hb")
    hb.send(b"ping")
    execute(kc, "print('secret')")
    assert not shell.poll(1000) and not sub.poll(200) and not hb.poll(200)
    for s in (shell, sub, hb):
        s.close()
    reply, msgs = execute(kc, "print('still fine')")  # the real client is unaffected
    assert stdout_of(msgs) == "still fine\n"


def test_shutdown_is_clean():
    km, kc = start_kernel(transport_encryption="required")
    _, msgs = execute(kc, "print('bye')")
    assert stdout_of(msgs) == "bye\n"
    stop_kernel(km, kc)
    assert not km.is_alive()
