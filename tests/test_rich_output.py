"""Comms with binary buffers, ipywidgets 8, the Output widget, matplotlib inline, displays,
and a notebook run through nbclient."""
from __future__ import annotations

import base64
import os
import uuid

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from conftest import collect_iopub, execute, outputs, shell_reply, stdout_of


def _send_comm(kc, msg_type, content, buffers=None, metadata=None):
    msg = kc.session.msg(msg_type, content, metadata=metadata)
    kc.shell_channel.send(msg) if not buffers else kc.session.send(
        kc.shell_channel.socket, msg, buffers=buffers)
    return msg["header"]["msg_id"]


def _comm_msgs(kc, msg_id):
    return [m for m in collect_iopub(kc, msg_id) if m["msg_type"].startswith("comm_")]


ECHO_TARGET = """
import comm
def _echo_target(c, open_msg):
    c.send({'opened': open_msg['content']['data']})
    @c.on_msg
    def _recv(msg):
        print('handler saw', len(msg['buffers']), 'buffers')
        c.send({'echo': msg['content']['data']}, buffers=msg['buffers'])
comm.get_comm_manager().register_target('echo', _echo_target)
"""


def test_frontend_comm_open_msg_close_with_buffers(kernel):
    _, kc = kernel
    execute(kc, ECHO_TARGET)
    cid = uuid.uuid4().hex
    mid = _send_comm(kc, "comm_open", {"comm_id": cid, "target_name": "echo", "data": {"hi": 1}})
    msgs = _comm_msgs(kc, mid)
    assert msgs[0]["content"]["data"] == {"opened": {"hi": 1}}
    assert msgs[0]["parent_header"]["msg_id"] == mid
    payload = os.urandom(100_000)
    mid = _send_comm(kc, "comm_msg", {"comm_id": cid, "data": {"n": 2}}, buffers=[payload, b"second"])
    allmsgs = collect_iopub(kc, mid)
    echo = [m for m in allmsgs if m["msg_type"] == "comm_msg"][0]
    assert echo["content"]["data"] == {"echo": {"n": 2}}
    assert [bytes(b) for b in echo["buffers"]] == [payload, b"second"]
    # output printed by the comm handler belongs to the comm message
    assert stdout_of(allmsgs) == "handler saw 2 buffers\n"
    msg = kc.session.msg("comm_info_request", {"target_name": "echo"})
    kc.shell_channel.send(msg)
    comms = shell_reply(kc, msg["header"]["msg_id"])["content"]["comms"]
    assert comms == {cid: {"target_name": "echo"}}
    msg = kc.session.msg("comm_info_request", {})
    kc.shell_channel.send(msg)
    assert cid in shell_reply(kc, msg["header"]["msg_id"])["content"]["comms"]
    _send_comm(kc, "comm_close", {"comm_id": cid, "data": {}})
    msg = kc.session.msg("comm_info_request", {"target_name": "echo"})
    kc.shell_channel.send(msg)
    assert shell_reply(kc, msg["header"]["msg_id"])["content"]["comms"] == {}


def test_kernel_comm_with_binary_buffers(kernel):
    _, kc = kernel
    code = ("import comm\nc = comm.create_comm(target_name='t', data={'a': 1}, "
            "buffers=[memoryview(b'\\x00\\x01\\x02'), bytes(range(256))])")
    _, msgs = execute(kc, code)
    opened = [m for m in msgs if m["msg_type"] == "comm_open"][0]
    assert opened["content"]["target_name"] == "t" and opened["content"]["data"] == {"a": 1}
    assert [bytes(b) for b in opened["buffers"]] == [b"\x00\x01\x02", bytes(range(256))]
    _, msgs = execute(kc, "c.close()")
    assert any(m["msg_type"] == "comm_close" for m in msgs)


def test_unknown_target_is_closed_and_unknown_comm_is_harmless(kernel):
    _, kc = kernel
    cid = uuid.uuid4().hex
    mid = _send_comm(kc, "comm_open", {"comm_id": cid, "target_name": "nobody", "data": {}})
    msgs = _comm_msgs(kc, mid)
    assert [m["msg_type"] for m in msgs] == ["comm_close"] and msgs[0]["content"]["comm_id"] == cid
    _send_comm(kc, "comm_msg", {"comm_id": "no-such-comm", "data": {}})
    assert execute(kc, "1")[0]["content"]["status"] == "ok"


def test_comm_requests_right_after_start(fresh_kernel):
    """Comms load with IPython, after the first kernel_info reply: comm messages sent at once
    (JupyterLab opens jupyter.widget.control as soon as the kernel is ready) still work."""
    _, kc = fresh_kernel
    cid = uuid.uuid4().hex
    info = kc.comm_info()
    mid = _send_comm(kc, "comm_open", {"comm_id": cid, "target_name": "nobody", "data": {}})
    assert shell_reply(kc, info)["content"] == {"status": "ok", "comms": {}}
    msgs = _comm_msgs(kc, mid)
    assert [m["msg_type"] for m in msgs] == ["comm_close"] and msgs[0]["content"]["comm_id"] == cid


def _widget_update(kc, comm_id, state):
    return _send_comm(kc, "comm_msg", {"comm_id": comm_id, "data": {
        "method": "update", "state": state, "buffer_paths": []}})


def test_widget_state_sync_both_ways(kernel):
    _, kc = kernel
    _, msgs = execute(kc, "import ipywidgets as w\ns = w.IntSlider(3)\n"
                          "s.observe(lambda ch: print('observed', ch['new']), 'value')\ns")
    view = outputs(msgs, "execute_result")[0]["data"]["application/vnd.jupyter.widget-view+json"]
    model = view["model_id"]
    mid = _widget_update(kc, model, {"value": 7})
    got = collect_iopub(kc, mid)
    assert stdout_of(got) == "observed 7\n"
    assert all(m["parent_header"]["msg_id"] == mid for m in got)
    _, msgs = execute(kc, "print(s.value); s.value = 9")
    assert stdout_of(msgs).startswith("7\nobserved 9")
    updates = [m["content"]["data"] for m in msgs if m["msg_type"] == "comm_msg"]
    assert {"method": "update", "state": {"value": 9}, "buffer_paths": []} in updates


def test_binary_widget_value(kernel):
    _, kc = kernel
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    _, msgs = execute(kc, f"import ipywidgets as w\nimg = w.Image(value={png!r}, format='png')\nimg")
    opened = [m for m in msgs if m["msg_type"] == "comm_open"
              and m["content"]["data"]["state"].get("_model_name") == "ImageModel"][0]
    assert [bytes(b) for b in opened["buffers"]] == [png]
    assert opened["content"]["data"]["buffer_paths"] == [["value"]]


def test_output_widget_captures_with_the_parent_it_asked_for(kernel):
    _, kc = kernel
    _, msgs = execute(kc, "import ipywidgets as w\nout = w.Output()\nb = w.Button()\n"
                          "def click(_):\n    with out:\n        print('clicked')\n"
                          "b.on_click(click)\nb")
    button = outputs(msgs, "execute_result")[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    mid = kc.execute("with out:\n    print('inside')\n    display('shown')")
    shell_reply(kc, mid)
    got = collect_iopub(kc, mid)
    asked = [m["content"]["data"]["state"]["msg_id"] for m in got
             if m["msg_type"] == "comm_msg" and "msg_id" in m["content"]["data"].get("state", {})]
    assert asked[0] == mid and asked[-1] == ""
    captured = [m for m in got if m["msg_type"] in ("stream", "display_data")]
    assert [m["parent_header"]["msg_id"] for m in captured] == [mid, mid]
    # a click arrives as a comm message: the Output widget asks for *that* message's outputs
    click = _send_comm(kc, "comm_msg", {"comm_id": button, "data": {
        "method": "custom", "content": {"event": "click"}}})
    got = collect_iopub(kc, click)
    asked = [m["content"]["data"]["state"]["msg_id"] for m in got
             if m["msg_type"] == "comm_msg" and "msg_id" in m["content"]["data"].get("state", {})]
    assert asked[0] == click
    assert [m["parent_header"]["msg_id"] for m in got if m["msg_type"] == "stream"] == [click]


def test_widget_control_request_states(kernel):
    _, kc = kernel
    execute(kc, "import ipywidgets as w\nkeep = w.IntSlider(11)")
    cid = uuid.uuid4().hex
    from ipywidgets._version import __control_protocol_version__ as version

    mid = _send_comm(kc, "comm_open", {"comm_id": cid, "target_name": "jupyter.widget.control",
                                       "data": {}}, metadata={"version": version})
    collect_iopub(kc, mid)
    mid = _send_comm(kc, "comm_msg", {"comm_id": cid, "data": {"method": "request_states"}})
    reply = [m for m in collect_iopub(kc, mid) if m["msg_type"] == "comm_msg"][0]
    states = reply["content"]["data"]["states"]
    assert reply["content"]["data"]["method"] == "update_states"
    assert any(s["state"].get("value") == 11 for s in states.values())


def test_interact(kernel):
    _, kc = kernel
    _, msgs = execute(kc, "from ipywidgets import interact\n"
                          "@interact(x=5)\ndef f(x):\n    print('x is', x)")
    assert "x is 5" in "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream") \
        or any("x is 5" in str(m["content"]) for m in msgs)
    assert any(m["msg_type"] == "comm_open" for m in msgs)


def test_matplotlib_inline_without_magic_and_no_leak(fresh_kernel):
    _, kc = fresh_kernel
    _, msgs = execute(kc, "import sys; print('matplotlib' in sys.modules)")
    assert stdout_of(msgs).strip() == "False"  # never imported unless the user does
    _, msgs = execute(kc, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]);")
    pngs = [d for d in outputs(msgs, "display_data") if "image/png" in d["data"]]
    assert len(pngs) == 1 and base64.b64decode(pngs[0]["data"]["image/png"])[:4] == b"\x89PNG"
    _, msgs = execute(kc, "1 + 1")
    assert outputs(msgs, "display_data") == []
    _, msgs = execute(kc, "plt.figure(); plt.plot([1]); plt.show()\nprint('after show')")
    kinds = [m["msg_type"] for m in msgs if m["msg_type"] in ("display_data", "stream")]
    assert kinds == ["display_data", "stream"]
    _, msgs = execute(kc, "%matplotlib inline\n%config InlineBackend.figure_formats = ['svg']\n"
                          "plt.plot([2, 1]);")
    assert "image/svg+xml" in outputs(msgs, "display_data")[0]["data"]


def test_rich_display_types(kernel):
    _, kc = kernel
    code = ("from IPython.display import *\n"
            "display(Markdown('*m*'), HTML('<i>h</i>'), Latex('$x$'), JSON({'a': 1}), "
            "SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>'), Javascript('1'))\n"
            "display(Image(data=bytes.fromhex('89504e470d0a1a0a'), format='png', width=10))\n"
            "display({'text/plain': 'raw', 'application/x-geo': {'k': 1}}, raw=True, "
            "metadata={'application/x-geo': {'m': 2}})")
    _, msgs = execute(kc, code)
    data = outputs(msgs, "display_data")
    mimes = [next(k for k in d["data"] if k != "text/plain") for d in data]
    assert mimes == ["text/markdown", "text/html", "text/latex", "application/json",
                     "image/svg+xml", "application/javascript", "image/png", "application/x-geo"]
    assert data[6]["metadata"]["image/png"] == {"width": 10}
    assert data[7]["metadata"] == {"application/x-geo": {"m": 2}}


def test_nbclient_notebook_with_plot_widget_and_rich_output(tmp_path):
    nb = new_notebook(cells=[
        new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);"),
        new_code_cell("import ipywidgets as w\nw.IntSlider(value=4)"),
        new_code_cell("from IPython.display import HTML\nHTML('<b>bold</b>')"),
    ])
    client = NotebookClient(nb, kernel_name="geokernel", timeout=60, store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    path = tmp_path / "out.ipynb"
    nbformat.write(nb, str(path))
    saved = nbformat.read(str(path), as_version=4)
    assert any("image/png" in o.get("data", {}) for o in saved.cells[0].outputs)
    view = saved.cells[1].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    state = saved.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert view["model_id"] in state and state[view["model_id"]]["state"]["value"] == 4
    assert saved.cells[2].outputs[0]["data"]["text/html"] == "<b>bold</b>"
