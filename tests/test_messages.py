"""Every request type of the core kernel, through jupyter_client against a real process."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import zmq
from jupyter_client.session import Session

from conftest import collect_iopub, execute, outputs, shell_reply, stdout_of


def test_iopub_order_for_a_cell(kernel):
    _, kc = kernel
    reply, msgs = execute(kc, "print('a'); 40 + 2")
    types = [m["msg_type"] for m in msgs]
    assert types == ["status", "execute_input", "stream", "execute_result", "status"]
    assert msgs[0]["content"]["execution_state"] == "busy"
    assert msgs[-1]["content"]["execution_state"] == "idle"
    count = reply["content"]["execution_count"]
    assert msgs[1]["content"]["execution_count"] == count
    assert msgs[3]["content"] == {"execution_count": count, "data": {"text/plain": "42"}, "metadata": {}}
    assert reply["content"]["status"] == "ok"
    assert reply["metadata"]["started"].endswith("Z")
    assert reply["parent_header"]["msg_type"] == "execute_request"


def test_streams_stay_in_order_with_displays_and_errors(kernel):
    _, kc = kernel
    code = ("import sys\nprint('one')\ndisplay('two')\nprint('three', file=sys.stderr)\n"
            "print('four')\nraise RuntimeError('five')")
    reply, msgs = execute(kc, code, stop_on_error=False)
    seen = []
    for m in msgs:
        if m["msg_type"] == "stream":
            seen.append(m["content"]["text"].strip())
        elif m["msg_type"] == "display_data":
            seen.append(m["content"]["data"]["text/plain"])
        elif m["msg_type"] == "error":
            seen.append(m["content"]["evalue"])
    assert seen == ["one", "'two'", "three", "four", "five"]
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "RuntimeError"
    assert reply["content"]["traceback"]


def test_display_update_and_clear_output(kernel):
    _, kc = kernel
    code = ("h = display('first', display_id=True)\nh.update('second')\n"
            "from IPython.display import clear_output; clear_output(wait=True)")
    _, msgs = execute(kc, code)
    disp = outputs(msgs, "display_data")[0]
    upd = outputs(msgs, "update_display_data")[0]
    assert disp["transient"]["display_id"] == upd["transient"]["display_id"]
    assert upd["data"]["text/plain"] == "'second'"
    assert outputs(msgs, "clear_output") == [{"wait": True}]


def test_rich_repr_mimebundle_and_metadata(kernel):
    _, kc = kernel
    code = ("class R:\n  def _repr_mimebundle_(self, include=None, exclude=None):\n"
            "    return {'text/markdown': '**r**', 'text/plain': 'R'}, {'text/markdown': {'x': 1}}\nR()")
    _, msgs = execute(kc, code)
    res = outputs(msgs, "execute_result")[0]
    assert res["data"]["text/markdown"] == "**r**"
    assert res["metadata"] == {"text/markdown": {"x": 1}}


def test_silent_store_history_and_user_expressions(kernel):
    _, kc = kernel
    before, _ = execute(kc, "z = 5")
    n = before["content"]["execution_count"]
    reply, msgs = execute(kc, "z * 2", silent=True)
    assert [m["msg_type"] for m in msgs] == ["status", "status"]  # no execute_input, no result
    reply, msgs = execute(kc, "z + 1", store_history=False, user_expressions={"a": "z*3", "b": "1/0"})
    assert reply["content"]["execution_count"] == n  # not incremented
    ue = reply["content"]["user_expressions"]
    assert ue["a"]["status"] == "ok" and ue["a"]["data"]["text/plain"] == "15"
    assert ue["b"]["status"] == "error" and ue["b"]["ename"] == "ZeroDivisionError"
    reply, _ = execute(kc, "1")
    assert reply["content"]["execution_count"] == n + 1


def test_payloads_page_next_input_exit(kernel):
    _, kc = kernel
    reply, _ = execute(kc, "zip?")
    page = reply["content"]["payload"][0]
    assert page["source"] == "page" and "zip" in page["data"]["text/plain"]
    reply, _ = execute(kc, "get_ipython().set_next_input('x = 1')")
    assert reply["content"]["payload"] == [{"source": "set_next_input", "text": "x = 1", "replace": False}]
    reply, _ = execute(kc, "exit()")
    assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": False}]
    reply, _ = execute(kc, "1")  # still alive: exit() only asks the frontend
    assert reply["content"]["status"] == "ok"


def test_help_prints(kernel):
    _, kc = kernel
    _, msgs = execute(kc, "help(len)")
    assert "Return the number of items" in stdout_of(msgs)


def test_input_disallowed_raises_stdin_not_implemented(kernel):
    _, kc = kernel
    reply, _ = execute(kc, "input('x')", allow_stdin=False)
    assert reply["content"]["ename"] == "StdinNotImplementedError"


def test_input_round_trip_and_eof(kernel):
    _, kc = kernel
    msg_id = kc.execute("a = input('first? ')\nimport getpass\nb = getpass.getpass('pw? ')\nprint(a, b)")
    req = kc.get_stdin_msg(timeout=10)
    assert req["content"] == {"prompt": "first? ", "password": False}
    assert req["parent_header"]["msg_id"] == msg_id
    kc.input("alpha")
    req = kc.get_stdin_msg(timeout=10)
    assert req["content"] == {"prompt": "pw? ", "password": True}
    kc.input("beta")
    shell_reply(kc, msg_id)
    assert stdout_of(collect_iopub(kc, msg_id)) == "alpha beta\n"
    msg_id = kc.execute("input()")
    kc.get_stdin_msg(timeout=10)
    kc.input("\x04")
    assert shell_reply(kc, msg_id)["content"]["ename"] == "EOFError"


def test_stop_on_error_aborts_queued_cells(kernel):
    _, kc = kernel
    first = kc.execute("import time; time.sleep(0.3); 1/0")
    queued = [kc.execute(f"aborted_{i} = {i}") for i in range(3)]
    assert shell_reply(kc, first)["content"]["status"] == "error"
    for msg_id in queued:
        r = shell_reply(kc, msg_id)
        assert r["content"]["status"] == "aborted"
        states = [m["content"]["execution_state"] for m in collect_iopub(kc, msg_id)
                  if m["msg_type"] == "status"]
        assert states == ["busy", "idle"]
    reply, _ = execute(kc, "'aborted_0' in dir()")
    assert reply["content"]["status"] == "ok"
    _, msgs = execute(kc, "'aborted_0' in dir()")
    assert outputs(msgs, "execute_result")[0]["data"]["text/plain"] == "False"


def test_stop_on_error_false_keeps_going(kernel):
    _, kc = kernel
    first = kc.execute("1/0", stop_on_error=False)
    second = kc.execute("'ran'")
    assert shell_reply(kc, first)["content"]["status"] == "error"
    assert shell_reply(kc, second)["content"]["status"] == "ok"


def test_cell_id_reaches_ipython(kernel):
    _, kc = kernel
    execute(kc, "seen = []\nget_ipython().events.register('pre_run_cell', lambda info: seen.append(info.cell_id))")
    msg = kc.session.msg("execute_request", {"code": "1", "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False})
    msg["metadata"]["cellId"] = "cell-abc"
    kc.shell_channel.send(msg)
    shell_reply(kc, msg["header"]["msg_id"])
    _, msgs = execute(kc, "print(seen[-2])")
    assert stdout_of(msgs).strip() == "cell-abc"


def test_kernel_info_on_shell_and_control(kernel):
    _, kc = kernel
    reply = kc.kernel_info(reply=True)["content"]
    assert reply["protocol_version"] == "5.5"
    assert reply["implementation"] == "geokernel"
    li = reply["language_info"]
    for key in ("name", "version", "mimetype", "file_extension", "pygments_lexer",
                "codemirror_mode", "nbconvert_exporter"):
        assert key in li
    assert "IPython" in reply["banner"] and reply["help_links"]
    assert reply["supported_features"][:2] == ["kernel subshells", "debugger"]  # as ipykernel 7
    msg = kc.session.msg("kernel_info_request")
    kc.control_channel.send(msg)
    ctl = kc.get_control_msg(timeout=10)
    assert ctl["parent_header"]["msg_id"] == msg["header"]["msg_id"]
    assert ctl["content"]["language_info"] == li


def test_complete_inspect_is_complete(kernel):
    _, kc = kernel
    execute(kc, "import os\nsome_variable = 1")
    r = kc.complete("some_va", reply=True)["content"]
    assert "some_variable" in r["matches"] and r["cursor_start"] == 0 and r["cursor_end"] == 7
    types = r["metadata"]["_jupyter_types_experimental"]
    assert any(t["text"] == "some_variable" for t in types)
    r = kc.complete("os.pa", reply=True)["content"]
    assert "os.path" in r["matches"] or "path" in r["matches"]
    r = kc.inspect("len", reply=True)["content"]
    assert r["found"] and "text/plain" in r["data"]
    r1 = kc.inspect("os.path.join", detail_level=1, reply=True)["content"]
    assert r1["found"]
    assert kc.inspect("no_such_name_here", reply=True)["content"]["found"] is False
    for code, status in (("x = 1", "complete"), ("def f():", "incomplete"), ("x = )", "invalid")):
        msg_id = kc.is_complete(code)
        r = shell_reply(kc, msg_id)["content"]
        assert r["status"] == status
        if status == "incomplete":
            assert r["indent"] == "    "


def test_history_session_numbers_are_absolute(kernel):
    _, kc = kernel
    execute(kc, "hist_marker = 12345")
    tail = kc.history(hist_access_type="tail", n=1, reply=True)["content"]["history"]
    session = tail[-1][0]
    assert session > 0 and tail[-1][2] == "hist_marker = 12345"
    rng = kc.history(hist_access_type="range", session=0, start=1, stop=3, reply=True)["content"]["history"]
    assert rng and all(row[0] == session for row in rng)
    found = kc.history(hist_access_type="search", pattern="hist_marker*", reply=True)["content"]["history"]
    assert found[-1][2] == "hist_marker = 12345"
    out = kc.history(hist_access_type="tail", n=1, output=True, reply=True)["content"]["history"]
    assert len(out[-1][2]) == 2


def test_history_is_written_once_per_second_of_activity(fresh_kernel):
    """No history thread: a hub timer commits the cache at most once per second of activity
    (also after it has fired once), and does commit it (a fresh sqlite connection sees it)."""
    import sqlite3

    _, kc = fresh_kernel
    _, msgs = execute(kc, "_hm = get_ipython().history_manager; _n = [0]; _w = _hm.writeout_cache\n"
                          "def _count(*a, **k):\n    _n[0] += 1\n    return _w(*a, **k)\n"
                          "_hm.writeout_cache = _count\nprint(_hm.hist_file, _hm.session_number)")
    hist_file, session = stdout_of(msgs).split()
    time.sleep(1.3)  # the timer has fired once by now
    _, msgs = execute(kc, "print(_n[0])")
    before = int(stdout_of(msgs))
    t0 = time.monotonic()
    for i in range(30):
        execute(kc, f"hist_probe_{i} = {i}")
    elapsed = time.monotonic() - t0
    _, msgs = execute(kc, "print(_n[0])")
    assert before >= 1
    assert int(stdout_of(msgs)) - before <= int(elapsed) + 2  # not one commit per cell
    time.sleep(1.5)  # the timer fires a second after the last cell
    with sqlite3.connect(hist_file) as db:
        rows = db.execute("SELECT source FROM history WHERE session = ? AND source LIKE 'hist_probe_%'",
                          (int(session),)).fetchall()
    assert len(rows) == 30 and rows[-1] == ("hist_probe_29 = 29",)


def test_notebook_magic_exports_cell_output(fresh_kernel, tmp_path):
    """IPython keeps each cell's output for %notebook; printed text must be in the export.
    (A fresh kernel: IPython numbers exported cells by history position, which an earlier
    exit() cell, never stored, shifts away from the execution count, in ipykernel too.)"""
    _, kc = fresh_kernel
    code = "import sys\nprint('out', 1)\nprint('err', 2, file=sys.stderr)\nprint('out', 3)"
    execute(kc, code)
    target = tmp_path / "export.ipynb"
    execute(kc, f"%notebook {target}")
    cells = json.loads(target.read_text())["cells"]
    cell = next(c for c in cells if "".join(c["source"]) == code)
    streams = [(o["name"], "".join(o["text"])) for o in cell["outputs"] if o["output_type"] == "stream"]
    import IPython

    if IPython.version_info[0] < 9:  # IPython 8 keeps no cell output for %notebook (ipykernel neither)
        assert streams == []
        return
    assert streams == [("stdout", "out 1\n"), ("stderr", "err 2\n"), ("stdout", "out 3\n")]


def test_connect_comm_info_and_usage(kernel):
    km, kc = kernel
    msg_id = kc.shell_channel.send(kc.session.msg("connect_request")) or None
    r = kc.get_shell_msg(timeout=10)["content"]
    assert r["shell_port"] == km.shell_port and r["hb_port"] == km.hb_port
    msg = kc.session.msg("comm_info_request", {})
    kc.shell_channel.send(msg)
    r = shell_reply(kc, msg["header"]["msg_id"])["content"]
    assert r["status"] == "ok" and isinstance(r["comms"], dict)
    msg = kc.session.msg("usage_request", {})
    kc.control_channel.send(msg)
    r = kc.get_control_msg(timeout=10)["content"]
    assert r["pid"] == km.provisioner.process.pid
    assert r["kernel_memory"] > 0 and r["cpu_count"] >= 1 and "total" in r["host_virtual_memory"]


def test_unknown_request_gets_an_error_reply(kernel):
    _, kc = kernel
    msg = kc.session.msg("no_such_request", {})
    kc.shell_channel.send(msg)
    r = shell_reply(kc, msg["header"]["msg_id"])
    assert r["msg_type"] == "no_such_reply" and r["content"]["status"] == "error"
    assert execute(kc, "1")[0]["content"]["status"] == "ok"


def _raw_shell_socket(km):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{km.shell_port}")
    return sock


def test_badly_signed_and_malformed_messages_are_dropped(kernel):
    km, kc = kernel
    sock = _raw_shell_socket(km)
    try:
        bad = Session(key=b"wrong-key", check_pid=False)
        msg = bad.msg("execute_request", {"code": "hacked = True", "silent": False})
        sock.send_multipart(bad.serialize(msg))
        sock.send_multipart([b"garbage", b"no delimiter"])
        sock.send_multipart([b"<IDS|MSG>", b"sig", b"{"])
        # a correctly signed message whose JSON is broken
        good = Session(key=km.session.key, check_pid=False)
        parts = [b"{not json", b"{}", b"{}", b"{}"]
        sock.send_multipart([b"<IDS|MSG>", good.sign(parts)] + parts)
        # the same valid message twice: the replay is dropped
        msg = good.msg("execute_request", {"code": "replayed = replayed + 1 if 'replayed' in dir() else 1",
                                           "silent": False, "store_history": False,
                                           "user_expressions": {}, "allow_stdin": False})
        frames = good.serialize(msg)
        sock.send_multipart(frames)
        sock.send_multipart(frames)
        time.sleep(0.5)
    finally:
        sock.close()
    _, msgs = execute(kc, "print('hacked' in dir(), replayed)")
    assert stdout_of(msgs).strip() == "False 1"


def test_requests_from_one_client_run_in_arrival_order(kernel):
    _, kc = kernel
    ids = [kc.execute(f"order_log = (order_log if 'order_log' in dir() else []) + [{i}]") for i in range(20)]
    for msg_id in ids:
        shell_reply(kc, msg_id)
    _, msgs = execute(kc, "print(order_log[-20:])")
    assert stdout_of(msgs).strip() == str(list(range(20)))


def test_control_is_not_queued_behind_shell(kernel):
    _, kc = kernel
    msg_id = kc.execute("import time; time.sleep(2)")
    time.sleep(0.2)
    t0 = time.monotonic()
    ctl = kc.session.msg("kernel_info_request")
    kc.control_channel.send(ctl)
    r = kc.get_control_msg(timeout=10)
    answered_during_cell = time.monotonic() - t0 < 1.5
    shell_reply(kc, msg_id)
    assert r["parent_header"]["msg_id"] == ctl["header"]["msg_id"]
    assert answered_during_cell  # behaviour: answered before the 2 s cell ended, not a timing target
