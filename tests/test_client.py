"""geokernel.client against real kernel processes (ipykernel's python3, and geokernel when
its kernelspec is installed)."""
from __future__ import annotations

import base64
import json
import os
import sys

import gevent
import psutil
import pytest

from geokernel.client import (KernelDiedError, KernelLaunchError, KernelTimeoutError,
                              NoSuchKernelError,
                              connect, decode_image, list_kernelspecs, richest, start_kernel)
from geokernel.client.outputs import OutputCollector
from geokernel.message import Message

# both are installed by the test extras (ipykernel for comparison); a missing one is a failure
KERNELS = ["python3", "geokernel"]


def _shutdown(k) -> None:
    try:
        k.shutdown(timeout=5)
    finally:
        if k.pid and psutil.pid_exists(k.pid):  # belt and braces: never leak a kernel
            try:
                os.kill(k.pid, 9)
            except OSError:
                pass


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request):
    k = start_kernel(request.param, startup_timeout=60)
    request.addfinalizer(lambda: _shutdown(k))
    return k


@pytest.fixture(params=KERNELS)
def fresh_kernel(request):
    k = start_kernel(request.param, startup_timeout=60)
    request.addfinalizer(lambda: _shutdown(k))
    return k


@pytest.fixture
def fake_kernelspec(tmp_path, monkeypatch):
    """make(name, argv) installs a throwaway kernelspec visible through JUPYTER_PATH."""
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))

    def make(name: str, argv: list) -> str:
        d = tmp_path / "kernels" / name
        d.mkdir(parents=True)
        (d / "kernel.json").write_text(json.dumps(
            {"argv": argv, "display_name": name, "language": "python"}))
        return name
    return make


# -- discovery, start-up ------------------------------------------------------------------
def test_list_kernelspecs():
    specs = {s.name: s for s in list_kernelspecs()}
    assert "python3" in specs
    s = specs["python3"]
    assert s.language == "python" and "{connection_file}" in s.argv
    assert s.interrupt_mode in ("signal", "message") and os.path.isdir(s.resource_dir)


def test_unknown_kernelspec():
    with pytest.raises(NoSuchKernelError):
        start_kernel("no-such-kernel-xyz")


def test_kernel_info(kernel):
    info = kernel.kernel_info()
    assert info["status"] == "ok" and info["language_info"]["name"] == "python"
    assert kernel.first_reply_at is not None and kernel.first_reply_at >= kernel.launched_at
    assert kernel.info.ip == "127.0.0.1"


# -- execute and outputs --------------------------------------------------------------------
def test_execute_stream_merged_and_result(kernel):
    seen = []
    r = kernel.execute("import sys\nprint('a')\nprint('b')\nsys.stdout.flush()\n"
                       "print('err', file=sys.stderr); sys.stderr.flush()\n6*7",
                       on_output=seen.append)
    assert r.status == "ok" and r.error is None and isinstance(r.execution_count, int)
    streams = [o for o in r.outputs if o["output_type"] == "stream"]
    assert [o["name"] for o in streams] == ["stdout", "stderr"]  # consecutive stdout merged
    assert r.stdout == "a\nb\n" and r.stderr == "err\n"
    assert r.data["text/plain"] == "42"
    assert r.outputs[-1]["execution_count"] == r.execution_count
    assert any(m.msg_type == "status" for m in seen)


def test_display_data_and_update(kernel):
    r = kernel.execute("from IPython.display import display, HTML\n"
                       "h = display(HTML('<b>one</b>'), display_id=True)\n")
    assert [o["output_type"] for o in r.outputs] == ["display_data"]
    assert r.outputs[0]["data"]["text/html"] == "<b>one</b>"
    r2 = kernel.execute("h.update(HTML('<b>two</b>'))")
    assert r2.outputs == []
    assert r.outputs[0]["data"]["text/html"] == "<b>two</b>"  # earlier cell updated in place


def test_clear_output_wait(kernel):
    r = kernel.execute("from IPython.display import clear_output\n"
                       "print('old', flush=True)\nclear_output(wait=True)\nprint('new')")
    assert r.outputs == [{"output_type": "stream", "name": "stdout", "text": "new\n"}]
    r = kernel.execute("print('old', flush=True)\nclear_output()")
    assert r.outputs == []


def test_error(kernel):
    r = kernel.execute("1/0")
    assert r.status == "error"
    assert r.error.ename == "ZeroDivisionError" and r.error.traceback
    assert [o["output_type"] for o in r.outputs] == ["error"]


def test_silent_and_user_expressions(kernel):
    r = kernel.execute("zz = 5", silent=True, user_expressions={"e": "zz * 2"})
    assert r.status == "ok" and r.outputs == []
    assert r.reply["user_expressions"]["e"]["data"]["text/plain"] == "10"


def test_input(kernel):
    prompts = []

    def answer(prompt, password):
        prompts.append((prompt, password))
        return "bob"
    r = kernel.execute("x = input('name? ')\nprint('got', x)", on_input=answer)
    assert r.status == "ok" and r.stdout.endswith("got bob\n")
    assert prompts == [("name? ", False)]


def test_no_stdin(kernel):
    r = kernel.execute("input()")
    assert r.status == "error"  # allow_stdin False when no on_input


def test_complete_inspect_is_complete_history(kernel):
    c = kernel.complete("pri")
    assert c["status"] == "ok" and "print" in c["matches"]
    i = kernel.inspect("print", detail_level=0)
    assert i["status"] == "ok" and i["found"]
    assert kernel.is_complete("for i in x:")["status"] == "incomplete"
    assert kernel.is_complete("x = 1")["status"] == "complete"
    h = kernel.history(hist_access_type="tail", n=5)
    assert h["status"] == "ok" and isinstance(h["history"], list)


def test_raw_request(kernel):
    reply = kernel.request("shell", "kernel_info_request", {}, timeout=10, wait_idle=True)
    assert reply.msg_type == "kernel_info_reply"
    reply = kernel.request("control", "kernel_info_request", {}, timeout=10)
    assert reply.msg_type == "kernel_info_reply"


def test_heartbeat(kernel):
    assert kernel.is_alive(timeout=5)


def test_comm_round_trip(kernel):
    r = kernel.execute(
        "import comm\n"
        "def _echo_target(c, msg):\n"
        "    @c.on_msg\n"
        "    def _(m):\n"
        "        c.send({'echo': m['content']['data']})\n"
        "comm.get_comm_manager().register_target('test_echo', _echo_target)\n")
    assert r.status == "ok", r.error
    cid = kernel.comm_open("test_echo", {"hello": 1})
    kernel.comm_send(cid, {"n": 1})
    m = kernel.recv_comm(cid, timeout=10)
    assert m.msg_type == "comm_msg" and m.content["data"] == {"echo": {"n": 1}}
    kernel.comm_close(cid)


def test_connect_existing(kernel):
    other = connect(kernel.connection_file, timeout=20)
    try:
        assert other.execute("print('via connect')").stdout == "via connect\n"
    finally:
        other.close()
    assert kernel.execute("1").status == "ok"


# -- interrupt / restart / shutdown / death ---------------------------------------------
def test_interrupt_busy_loop(kernel):
    g = gevent.spawn(kernel.execute, "while True: pass", timeout=30)
    gevent.sleep(1.0)
    kernel.interrupt()
    r = g.get(timeout=30)
    assert r.status == "error" and r.error.ename == "KeyboardInterrupt"
    assert kernel.execute("1+1").data["text/plain"] == "2"


def test_restart_clears_state(fresh_kernel):
    k = fresh_kernel
    old_pid = k.pid
    assert k.execute("state = 123").status == "ok"
    k.restart(timeout=60)
    assert k.pid != old_pid and not psutil.pid_exists(old_pid)
    r = k.execute("state")
    assert r.status == "error" and r.error.ename == "NameError"


def test_shutdown(fresh_kernel):
    k = fresh_kernel
    pid, path = k.pid, k.connection_file
    assert os.path.exists(path)
    k.shutdown(timeout=10)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not os.path.exists(path)
    assert k.is_alive() is False


def test_death_during_execute(fresh_kernel):
    k = fresh_kernel
    with pytest.raises(KernelDiedError, match="exit code 3") as ei:
        k.execute("import os; os._exit(3)", timeout=30)
    assert ei.value.exit_code == 3 and fresh_kernel.kernel_name in str(ei.value)
    with pytest.raises(KernelDiedError):  # later requests fail at once, too
        k.kernel_info(timeout=30)


def test_death_during_start(fake_kernelspec):
    name = fake_kernelspec("dies-at-once", [sys.executable, "-c", "import sys; sys.exit(7)"])
    with pytest.raises(KernelDiedError, match="exit code 7") as ei:
        start_kernel(name, startup_timeout=30)
    assert ei.value.kernel_name == name


def test_missing_executable(fake_kernelspec):
    name = fake_kernelspec("no-exe", ["/nonexistent/kernel-binary", "{connection_file}"])
    with pytest.raises(KernelLaunchError, match="no-exe"):
        start_kernel(name, startup_timeout=10)


def test_startup_timeout_kills(fake_kernelspec):
    name = fake_kernelspec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(KernelTimeoutError, match="kernel_info_reply"):
        start_kernel(name, startup_timeout=1.5)
    # the sleeper must have been killed: no child of ours still runs it
    kids = [p for p in psutil.Process().children() if "time.sleep(60)" in " ".join(p.cmdline())]
    assert not [p for p in kids if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("name", KERNELS)
def test_ten_kernels_concurrently(name):
    handles = []

    def one(i):
        k = start_kernel(name, startup_timeout=120)
        handles.append(k)
        return k.execute(f"print({i} * 2)", timeout=60).stdout

    greenlets = [gevent.spawn(one, i) for i in range(10)]
    try:
        gevent.joinall(greenlets, timeout=180)
        assert [g.get(block=False) for g in greenlets] == [f"{i * 2}\n" for i in range(10)]
    finally:
        gevent.killall(greenlets)
        gevent.joinall([gevent.spawn(_shutdown, k) for k in handles], timeout=60)
    assert all(not psutil.pid_exists(k.pid) for k in handles)


# -- pure helpers -------------------------------------------------------------------------
def _msg(msg_type, **content):
    return Message({"msg_type": msg_type, "msg_id": "x"}, {}, {}, content)


def test_output_collector_semantics():
    displays = {}
    c = OutputCollector(displays)
    c.handle(_msg("stream", name="stdout", text="a"))
    c.handle(_msg("stream", name="stdout", text="b"))
    c.handle(_msg("clear_output", wait=True))
    assert c.finish()[0]["text"] == "ab"  # wait=True: nothing cleared yet
    c.handle(_msg("display_data", data={"text/plain": "1"}, metadata={},
                  transient={"display_id": "d"}))
    assert [o["output_type"] for o in c.outputs] == ["display_data"]
    c.handle(_msg("update_display_data", data={"text/plain": "2"}, metadata={},
                  transient={"display_id": "d"}))
    assert c.outputs[0]["data"] == {"text/plain": "2"}
    c.handle(_msg("clear_output", wait=False))
    assert c.outputs == [] and displays == {}


def test_media_helpers():
    png = b"\x89PNG\r\n\x1a\nxx"
    bundle = {"text/plain": "x", "image/png": base64.b64encode(png).decode() + "\n",
              "image/svg+xml": "<svg/>"}
    assert richest(bundle) == "image/svg+xml"
    assert richest(bundle, supported=("image/png", "text/plain")) == "image/png"
    assert richest({"data": bundle}, supported=("text/html",)) is None
    assert decode_image(bundle, "image/png") == png
    assert decode_image({"data": bundle}, "image/svg+xml") == b"<svg/>"
    assert decode_image(base64.b64encode(png).decode(), "image/png") == png
