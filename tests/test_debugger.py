"""The JupyterLab visual debugger: debug_request/debug_reply on control, debug_event on iopub,
driven through a real kernel with the DAP sequence JupyterLab sends."""
from __future__ import annotations

import json
import queue
import socket
import time
from pathlib import Path

import pytest
import zmq

from conftest import execute, stdout_of
from geokernel.debugger.cell_files import HASH_SEED, murmur2
from geokernel.debugger.dap_client import DapParser, encode
from geokernel.debugger.variables import VariableExplorer, accept_variable
from geokernel.kernelspec import kernel_dict

ROOT = Path(__file__).resolve().parents[1]

CELL = """\
def f(n):
    total = n * 2
    return total

x = f(21)
print('x is', x)
"""


class Debugger:
    """A JupyterLab stand-in: DAP over control, every iopub message kept in arrival order."""

    def __init__(self, kc):
        self.kc = kc
        self.seq = 0
        self.iopub: list = []

    def request(self, command: str, arguments: dict | None = None, timeout: float = 20) -> dict:
        self.seq += 1
        msg = self.kc.session.msg("debug_request", {"type": "request", "seq": self.seq,
                                                    "command": command,
                                                    "arguments": arguments or {}})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.control_channel.get_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "debug_reply"
                content = reply["content"]
                assert content["request_seq"] == self.seq and content["command"] == command
                return content

    def ok(self, command: str, arguments: dict | None = None) -> dict:
        reply = self.request(command, arguments)
        assert reply["success"], reply
        return reply.get("body", {})

    def wait_iopub(self, pred, timeout: float = 20) -> dict:
        for m in self.iopub:
            if pred(m):
                self.iopub.remove(m)
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if pred(m):
                return m
            self.iopub.append(m)
        raise TimeoutError("no matching iopub message")

    def event(self, name: str, timeout: float = 20) -> dict:
        return self.wait_iopub(lambda m: m["msg_type"] == "debug_event"
                               and m["content"].get("event") == name, timeout)["content"]

    def start(self) -> None:
        """What JupyterLab sends when the debugger is switched on."""
        body = self.ok("initialize", {"clientID": "jupyterlab", "clientName": "JupyterLab",
                                      "adapterID": "python", "pathFormat": "path",
                                      "linesStartAt1": True, "columnsStartAt1": True,
                                      "supportsVariableType": True,
                                      "supportsVariablePaging": True})
        assert body["supportsConfigurationDoneRequest"]
        self.ok("attach")
        info = self.ok("debugInfo")
        assert info["isStarted"] is True

    def break_at(self, code: str, line: int) -> str:
        path = self.ok("dumpCell", {"code": code})["sourcePath"]
        bps = self.ok("setBreakpoints", {"source": {"path": path},
                                         "breakpoints": [{"line": line}],
                                         "sourceModified": False})["breakpoints"]
        assert bps[0]["verified"] and bps[0]["line"] == line
        self.ok("setExceptionBreakpoints", {"filters": [], "exceptionOptions": []})
        self.ok("configurationDone")
        return path

    def shell_reply(self, msg_id: str, timeout: float = 20) -> dict:
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def outputs(self, msg_id: str) -> list:
        """iopub messages of a request, up to its idle status."""
        def mine(m):
            return m["parent_header"].get("msg_id") == msg_id
        out = []
        while True:
            m = self.wait_iopub(mine)
            out.append(m)
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return out


@pytest.fixture()
def dbg(fresh_kernel):
    km, kc = fresh_kernel
    return km, Debugger(kc)


def ping_heartbeat(km, timeout: float = 5.0) -> float:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{km.hb_port}")
    try:
        t0 = time.monotonic()
        sock.send(b"ping")
        assert sock.poll(int(timeout * 1000)), "heartbeat did not answer"
        assert sock.recv() == b"ping"
        return time.monotonic() - t0
    finally:
        sock.close()


# ---- without a kernel ----------------------------------------------------------------------
def test_murmur2_matches_the_reference_values():
    # values of the MurmurHash2 reference (x86, 32 bit) with the seed debugInfo advertises
    assert HASH_SEED == 0xC70F6907
    assert murmur2("") == 3990065800
    assert murmur2("a") == 2167009006
    assert murmur2("abcd") == 804720481
    assert murmur2("abcde") == 730143326
    assert murmur2("héllo wörld ∑") == 3394936774


def test_dap_framing_round_trip():
    msgs = [{"seq": 1, "type": "event", "event": "output", "body": {"output": "ü" * 3}},
            {"seq": 2, "type": "response", "request_seq": 7, "success": True}]
    data = b"".join(encode(m) for m in msgs)
    parser = DapParser()
    got = []
    for i in range(0, len(data), 7):  # arbitrary TCP chunking
        got += parser.feed(data[i:i + 7])
    assert got == msgs


def test_variable_explorer():
    class Obj:
        def __init__(self):
            self.attr = [1, 2]

    ns = {"a": 5, "d": {"k": [1, 2]}, "o": Obj(), "In": [], "_i3": "", "_5": 1, "__name__": "m"}
    ex = VariableExplorer(ns)
    top = {v["name"]: v for v in ex.inspect()}
    assert set(top) == {"a", "d", "o"}
    assert top["a"]["value"] == "5" and top["a"]["variablesReference"] == 0
    (k,) = ex.children(top["d"]["variablesReference"])
    assert k["name"] == "'k'" and k["evaluateName"] == "d['k']"
    assert [c["value"] for c in ex.children(k["variablesReference"])] == ["1", "2"]
    assert ex.children(top["o"]["variablesReference"])[0]["name"] == "attr"
    assert not accept_variable("_ih") and accept_variable("_private")


def test_kernelspec_enables_the_debugger():
    assert kernel_dict()["metadata"]["debugger"] is True
    spec = json.loads((ROOT / "share/jupyter/kernels/geokernel/kernel.json").read_text())
    assert spec["metadata"]["debugger"] is True


# ---- a real kernel --------------------------------------------------------------------------
def test_kernel_info_and_lazy_debugpy(dbg):
    km, d = dbg
    kc = d.kc
    msg_id = kc.kernel_info()
    info = d.shell_reply(msg_id)["content"]
    assert info["debugger"] is True and "debugger" in info["supported_features"]
    probe = ("import sys, threading; print(sorted(m for m in ('debugpy', 'pydevd') "
             "if m in sys.modules), threading.active_count())")
    _, msgs = execute(kc, probe)
    assert stdout_of(msgs).split() == ["[]", "1"]
    # debugInfo and the variable panel work without loading debugpy
    info = d.ok("debugInfo")
    assert info["isStarted"] is False and info["hashMethod"] == "Murmur2"
    assert info["tmpFileSuffix"] == ".py" and info["richRendering"] is True
    assert info["exceptionPaths"] == ["Python Exceptions"]
    _, msgs = execute(kc, probe)
    assert stdout_of(msgs).split() == ["[]", "1"]
    d.start()
    _, msgs = execute(kc, probe)
    assert "'debugpy'" in stdout_of(msgs)
    # pydevd's DAP port took our connection and accepts no other (nobody else drives it)
    _, msgs = execute(kc, "from pydevd import get_global_debugger as g\n"
                          "print(g()._server_socket_name[1])")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(stdout_of(msgs))), timeout=5).close()


def test_variables_without_a_stop(dbg):
    km, d = dbg
    execute(d.kc, "a = 5\nd = {'k': [1, 2]}\n"
                  "html = __import__('IPython').display.HTML('<b>hi</b>')")
    variables = {v["name"]: v for v in d.ok("inspectVariables")["variables"]}
    assert {"a", "d", "html"} <= set(variables)
    assert not {"In", "Out", "get_ipython", "_"} & set(variables)
    assert variables["a"]["value"] == "5" and variables["a"]["type"] == "int"
    children = d.ok("variables", {"variablesReference": variables["d"]["variablesReference"]})
    assert [v["name"] for v in children["variables"]] == ["'k'"]
    rich = d.ok("richInspectVariables", {"variableName": "html"})
    assert rich["data"]["text/html"] == "<b>hi</b>"
    assert d.ok("richInspectVariables", {"variableName": "a"})["data"]["text/plain"] == "5"
    assert d.request("richInspectVariables", {"variableName": "a b"})["success"] is False
    modules = d.ok("modules", {"startModule": 0, "moduleCount": 50})
    assert modules["totalModules"] > 50
    assert all(m["path"].endswith(".py") for m in modules["modules"])


def test_breakpoint_step_continue_disconnect(dbg):
    km, d = dbg
    d.start()
    info = d.ok("debugInfo")
    path = d.break_at(CELL, 2)
    expected = murmur2(CELL, info["hashSeed"])
    assert path == f"{info['tmpFilePrefix']}{expected}{info['tmpFileSuffix']}"
    assert d.ok("source", {"source": {"path": path}})["content"] == CELL
    msg_id = d.kc.execute(CELL)
    stopped = d.event("stopped")["body"]
    assert stopped["reason"] == "breakpoint"
    tid = stopped["threadId"]
    assert tid in d.ok("debugInfo")["stoppedThreads"]

    # the kernel stays responsive while the cell is stopped
    assert ping_heartbeat(km) < 1.0
    d.kc.control_channel.send(d.kc.session.msg("kernel_info_request", {}))
    assert d.kc.control_channel.get_msg(timeout=5)["msg_type"] == "kernel_info_reply"

    frames = d.ok("stackTrace", {"threadId": tid})["stackFrames"]
    assert (frames[0]["name"], frames[0]["line"], frames[0]["source"]["path"]) == ("f", 2, path)
    assert [f["name"] for f in frames] == ["f", "<module>"]  # no kernel frames
    frame_id = frames[0]["id"]
    scopes = d.ok("scopes", {"frameId": frame_id})["scopes"]
    assert [s["name"] for s in scopes][:2] == ["Locals", "Globals"]
    local = d.ok("variables", {"variablesReference": scopes[0]["variablesReference"]})
    assert {v["name"]: v["value"] for v in local["variables"]}["n"] == "21"
    assert d.ok("evaluate", {"expression": "n + 1", "frameId": frame_id,
                             "context": "repl"})["result"] == "22"
    rich = d.ok("richInspectVariables", {"variableName": "n", "frameId": frame_id})
    assert rich["data"]["text/plain"] == "21"

    d.ok("next", {"threadId": tid})
    assert d.event("stopped")["body"]["reason"] == "step"
    frames = d.ok("stackTrace", {"threadId": tid})["stackFrames"]
    assert frames[0]["line"] == 3
    local = d.ok("variables", {"variablesReference": d.ok(
        "scopes", {"frameId": frames[0]["id"]})["scopes"][0]["variablesReference"]})
    assert {v["name"]: v["value"] for v in local["variables"]}["total"] == "42"
    d.ok("copyToGlobals", {"srcVariableName": "total", "dstVariableName": "copied",
                           "srcFrameId": frames[0]["id"]})

    d.ok("continue", {"threadId": tid})
    reply = d.shell_reply(msg_id)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(d.outputs(msg_id)) == "x is 42\n"
    assert d.ok("debugInfo")["stoppedThreads"] == []
    assert d.ok("debugInfo")["breakpoints"] == [{"source": path, "breakpoints": [{"line": 2}]}]

    d.ok("disconnect", {"restart": False, "terminateDebuggee": False})
    assert d.ok("debugInfo")["isStarted"] is False
    reply, msgs = execute(d.kc, "import sys\nprint(copied, sys.gettrace())\nx = f(1)")
    assert reply["content"]["status"] == "ok"  # the old breakpoint no longer stops
    assert stdout_of(msgs) == "42 None\n"


def test_cell_files_are_removed_when_the_kernel_exits(dbg):
    km, d = dbg
    d.start()
    path = Path(d.ok("dumpCell", {"code": CELL})["sourcePath"])
    assert path.read_text() == CELL
    km.shutdown_kernel(now=False)  # shutdown_request: the kernel exits by itself
    assert not km.is_alive()
    assert not path.parent.exists()


@pytest.mark.parametrize("how", ["signal", "message"])
def test_interrupt_while_stopped_ends_the_cell(dbg, how):
    km, d = dbg
    d.start()
    code = "import time\nfor i in range(3):\n    y = i\ntime.sleep(30)\nprint('not reached')\n"
    d.break_at(code, 3)
    for _ in range(2):  # the debugger still stops after an interrupted stop
        msg_id = d.kc.execute(code)
        d.event("stopped")
        if how == "signal":
            km.interrupt_kernel()  # the kernelspec says interrupt_mode "signal": SIGINT
        else:
            d.kc.control_channel.send(d.kc.session.msg("interrupt_request", {}))
        reply = d.shell_reply(msg_id, timeout=15)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert "not reached" not in stdout_of(d.outputs(msg_id))
    d.ok("disconnect", {"restart": False, "terminateDebuggee": False})
    reply, msgs = execute(d.kc, "print('fine')")
    assert stdout_of(msgs) == "fine\n"


def test_exception_breakpoints_stop_only_in_user_code(dbg):
    km, d = dbg
    d.start()
    d.ok("setExceptionBreakpoints", {"filters": ["raised", "uncaught"], "exceptionOptions": []})
    d.ok("configurationDone")
    # the kernel's own exceptions (gevent, zmq, IPython) never stop or freeze it
    reply, msgs = execute(d.kc, "print('hello')\n!echo shell\n", timeout=20)
    assert reply["content"]["status"] == "ok" and stdout_of(msgs) == "hello\nshell\r\n"
    code = "def g():\n    raise ValueError('boom')\ng()\n"
    path = d.ok("dumpCell", {"code": code})["sourcePath"]
    msg_id = d.kc.execute(code)
    stops = []
    while True:  # raised in g, then again in the cell's frame; never in kernel code
        try:
            stopped = d.event("stopped", timeout=3)["body"]
        except TimeoutError:
            break
        frames = d.ok("stackTrace", {"threadId": stopped["threadId"]})["stackFrames"]
        stops.append(frames[0]["source"]["path"])
        d.ok("continue", {"threadId": stopped["threadId"]})
    assert stops and set(stops) == {path}
    assert d.shell_reply(msg_id)["content"]["ename"] == "ValueError"


def test_step_past_the_end_of_a_cell_does_not_stop_the_next_one(dbg):
    km, d = dbg
    d.start()
    code = "a = 1\nb = 2\n"
    d.break_at(code, 2)
    msg_id = d.kc.execute(code)
    d.ok("next", {"threadId": d.event("stopped")["body"]["threadId"]})
    assert d.shell_reply(msg_id)["content"]["status"] == "ok"
    reply, msgs = execute(d.kc, "print(a + b)", timeout=10)
    assert reply["content"]["status"] == "ok" and stdout_of(msgs) == "3\n"
