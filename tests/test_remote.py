"""geokernel.client against a real `jupyter server` (REST + kernel websocket, token auth):
geokernel and ipykernel started remotely, driven with the same API as local kernels."""
from __future__ import annotations

import time

import gevent
import pytest
from remote_server import jupyter_server

from geokernel.client import KernelDiedError, NoSuchKernelError, RemoteServer, connect, start_kernel
from geokernel.client.remote_channels import V1, decode_legacy, decode_v1, encode_legacy, encode_v1
from geokernel.client.remote_http import HTTPError
from geokernel.message import Message, make_header

KERNELS = ["geokernel", "python3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with jupyter_server(str(tmp_path_factory.mktemp("jupyter-server"))) as s:
        yield s
        left = s.get("/api/kernels")  # every test and fixture shut its kernels down
    assert left == [], left
    assert s.proc.returncode is not None and not s.kernel_pids()


@pytest.fixture(scope="module")
def remote(server):
    return RemoteServer(server.url, token=server.token)


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request, remote):
    k = remote.start_kernel(request.param)
    yield k
    k.shutdown()


# -- the wire formats, checked against jupyter_server's own (de)serializers -----------------
def _msg(buffers=()):
    return Message(make_header("comm_msg", "s1"), {"msg_id": "p"}, {"m": 1},
                   {"data": {"é": [1, 2]}}, list(buffers))


def test_v1_framing_matches_jupyter_server():
    from jupyter_server.services.kernels.connection.base import (deserialize_msg_from_ws_v1,
                                                                 serialize_msg_to_ws_v1)
    msg = _msg([b"\x00\x01", b"xyz"])
    data = encode_v1("shell", msg)
    channel, parts = deserialize_msg_from_ws_v1(data)
    assert channel == "shell" and len(parts) == 6 and parts[4:] == [b"\x00\x01", b"xyz"]
    theirs = serialize_msg_to_ws_v1(parts, "iopub")
    channel, back = decode_v1(theirs)
    assert channel == "iopub" and back.header == msg.header and back.content == msg.content
    assert back.parent_header == msg.parent_header and back.metadata == msg.metadata
    assert [bytes(b) for b in back.buffers] == [b"\x00\x01", b"xyz"]


def test_legacy_binary_framing_matches_jupyter_server():
    from jupyter_server.services.kernels.connection.base import deserialize_binary_message
    msg = _msg([b"buf"])
    theirs = deserialize_binary_message(encode_legacy("shell", msg))
    assert theirs["channel"] == "shell" and theirs["content"] == msg.content
    assert [bytes(b) for b in theirs["buffers"]] == [b"buf"]
    assert decode_legacy(encode_legacy("iopub", _msg()))[1].content == msg.content


@pytest.mark.parametrize("bad", [b"", b"\x01" * 7, (99).to_bytes(8, "little") + b"x" * 30,
                                 (6).to_bytes(8, "little") + (500).to_bytes(8, "little") * 6])
def test_v1_bad_input_is_an_error_not_a_crash(bad):
    with pytest.raises(ValueError):
        decode_v1(bad)


# -- REST ---------------------------------------------------------------------------------
def test_kernelspecs_and_token(server, remote):
    specs = remote.kernelspecs()
    assert {"geokernel", "python3"} <= set(specs)
    assert specs["geokernel"]["language"] == "python"
    with pytest.raises(HTTPError) as e:
        RemoteServer(server.url, token="wrong").kernelspecs()
    assert e.value.status == 403


def test_unknown_kernel_name(remote):
    with pytest.raises(NoSuchKernelError):
        remote.start_kernel("no-such-kernel")


# -- running code -------------------------------------------------------------------------
def test_execute_streams_and_result(kernel):
    assert kernel.subprotocol == V1
    r = kernel.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7")
    assert r.status == "ok" and r.stdout == "out\n" and r.stderr == "err\n"
    assert r.data["text/plain"] == "42"
    assert kernel.kernel_info_reply["language_info"]["name"] == "python"


def test_error_and_display(kernel):
    r = kernel.execute("from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))\n1/0")
    assert r.status == "error" and r.error.ename == "ZeroDivisionError"
    assert any(o.get("data", {}).get("text/html") == "<b>x</b>" for o in r.outputs)


def test_input_over_websocket(kernel):
    r = kernel.execute("x = input('name? ')\nprint('hi', x)",
                       on_input=lambda prompt, pw: prompt.upper())
    assert r.status == "ok" and r.stdout.endswith("hi NAME? \n")


def test_comm_round_trip_with_buffers(kernel):
    kernel.execute(
        "import comm\n"
        "def _t(c, msg):\n"
        "    c.on_msg(lambda m: c.send({'n': len(m['buffers'][0])}, buffers=[b'pong']))\n"
        "comm.get_comm_manager().register_target('gk_remote_echo', _t)\n")
    cid = kernel.comm_open("gk_remote_echo", {})
    kernel.comm_send(cid, {}, buffers=[b"12345"])
    m = kernel.recv_comm(cid, timeout=10)
    assert m.content["data"] == {"n": 5} and [bytes(b) for b in m.buffers] == [b"pong"]
    kernel.comm_close(cid)


def test_interrupt_sleeping_cell(kernel):
    g = gevent.spawn(kernel.execute, "import time\ntime.sleep(60)", timeout=30)
    gevent.sleep(1.0)
    kernel.interrupt()
    r = g.get(timeout=20)
    assert r.status == "error" and r.error.ename == "KeyboardInterrupt"
    assert kernel.execute("1").status == "ok"


def test_restart_clears_state(kernel):
    kernel.execute("marker = 1")
    kernel.restart()
    r = kernel.execute("'marker' in dir()")
    assert r.data["text/plain"] == "False"
    assert kernel.is_alive()


def test_remote_outputs_equal_local_ones(kernel):
    code = "for i in range(3): print(i)\n{'a': [1, 2]}"
    with start_kernel(kernel.kernel_name) as local:
        want = local.execute(code)
    got = kernel.execute(code)
    strip = lambda outs: [{k: v for k, v in o.items() if k != "execution_count"} for o in outs]
    assert strip(got.outputs) == strip(want.outputs)


# -- lifecycle ----------------------------------------------------------------------------
def test_start_kernel_with_server_url_and_shutdown(server, remote):
    with start_kernel("geokernel", server=server.url, token=server.token) as k:
        assert k.execute("print(2 + 2)").stdout == "4\n"
        kid = k.kernel_id
        assert kid in {m["id"] for m in remote.list_kernels()}
    assert kid not in {m["id"] for m in remote.list_kernels()}
    with pytest.raises(Exception):
        k.execute("1")


def test_attach_then_detach_keeps_kernel(remote):
    owner = remote.start_kernel("geokernel")
    try:
        owner.execute("shared = 'yes'")
        other = connect(owner.kernel_id, server=remote.url.url, token=remote.token)
        assert other.execute("print(shared)").stdout == "yes\n"
        other.close()
        assert owner.is_alive() and owner.execute("shared").data["text/plain"] == "'yes'"
    finally:
        owner.shutdown()


def test_legacy_json_protocol(remote):
    srv = RemoteServer(remote.url.url, remote.token, protocols=())
    with srv.start_kernel("geokernel") as k:
        assert k.subprotocol is None
        r = k.execute("print('legacy')\n1 + 1")
        assert r.stdout == "legacy\n" and r.data["text/plain"] == "2"


def test_kernel_deleted_behind_our_back(remote):
    k = remote.start_kernel("geokernel")
    try:
        remote.api("DELETE", "kernels", k.kernel_id)
        deadline = time.monotonic() + 20
        while k.lost is None and time.monotonic() < deadline:
            gevent.sleep(0.1)
        assert k.lost is not None
        with pytest.raises(KernelDiedError):
            k.execute("1")
        assert not k.is_alive()
    finally:
        k.shutdown()



def test_remote_client_adds_no_os_thread(remote):
    import os
    before = len(os.listdir("/proc/self/task"))
    with remote.start_kernel("geokernel") as k:  # an IP-literal URL: no resolver thread
        k.execute("pass")
        k.interrupt()
        assert k.channels.ping(5)  # websocket ping/pong with the server
        assert len(os.listdir("/proc/self/task")) == before
