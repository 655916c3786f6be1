"""What libraries read from the kernel, as on ipykernel 7.4: `get_ipython().kernel` (shell,
session, iopub_socket, send_response, get_parent with the full parent message), the shell's
get_parent, and the frontend checks of rich and plotly. Every test runs on both kernels."""
from __future__ import annotations

import json

from compare_kernels import kernel_fixture, run, stream_text

kernel = kernel_fixture()
geokernel_only = kernel_fixture(kernels=("geokernel",))


def _out(kc, code: str):
    reply, msgs = run(kc, code)
    assert reply["status"] == "ok", reply
    return stream_text(msgs)


def test_kernel_get_parent_is_the_full_request(kernel):
    _, kc = kernel
    code = ("import json\np = get_ipython().kernel.get_parent()\n"
            "print(json.dumps({'keys': sorted(p), 'code': p['content']['code'], "
            "'type': p['msg_type'], 'id': p['msg_id'] == p['header']['msg_id'], "
            "'meta': p['metadata'], 'buffers': p['buffers'], 'ph': p['parent_header']}))")
    reply, msgs = run(kc, code)
    got = json.loads(stream_text(msgs))
    assert got == {"keys": ["buffers", "content", "header", "metadata", "msg_id", "msg_type",
                            "parent_header"],
                   "code": code, "type": "execute_request", "id": True, "meta": {},
                   "buffers": [], "ph": {}}


def test_shell_get_parent_is_the_full_request_too(kernel):
    _, kc = kernel
    code = ("sp = get_ipython().get_parent()\n"
            "print(sorted(sp), sp['content']['code'] == _ih[-1] or sp['content']['code'])")
    assert _out(kc, code) == ("['buffers', 'content', 'header', 'metadata', 'msg_id', "
                              "'msg_type', 'parent_header'] True\n")


def test_kernel_get_parent_carries_the_request_metadata(kernel):
    _, kc = kernel
    msg = kc.session.msg("execute_request", {
        "code": "print(get_ipython().kernel.get_parent()['metadata'].get('cellId'))",
        "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False,
        "stop_on_error": True}, metadata={"cellId": "cell-42"})
    kc.shell_channel.send(msg)
    msgs = []
    while True:
        m = kc.get_iopub_msg(timeout=20)
        if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            continue
        msgs.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    assert stream_text(msgs) == "cell-42\n"


def test_kernel_has_shell_session_and_iopub(kernel):
    _, kc = kernel
    code = ("k = get_ipython().kernel\n"
            "print(k.shell is get_ipython(), isinstance(k.session.session, str), "
            "k.session.session != '', isinstance(k.session.username, str), "
            "k.iopub_socket is not None, callable(k.session.msg), callable(k.send_response), "
            "k.comm_manager is not None, isinstance(k.execution_count, int), "
            "k.language_info['name'])")
    assert _out(kc, code) == "True True True True True True True True True python\n"


def test_session_msg_has_jupyter_client_shape(kernel):
    _, kc = kernel
    code = ("k = get_ipython().kernel\n"
            "m = k.session.msg('custom', {'a': 1}, parent=k.get_parent())\n"
            "print(sorted(m), m['msg_type'], m['content'], "
            "m['parent_header']['msg_id'] == k.get_parent()['header']['msg_id'], "
            "m['header']['session'] == k.session.session)")
    assert _out(kc, code) == ("['content', 'header', 'metadata', 'msg_id', 'msg_type', "
                              "'parent_header'] custom {'a': 1} True True\n")


def test_send_response_on_iopub_reaches_the_cell(kernel):
    _, kc = kernel
    reply, msgs = run(kc, "k = get_ipython().kernel\n"
                          "k.send_response(k.iopub_socket, 'stream', "
                          "{'name': 'stdout', 'text': 'by send_response\\n'})\n"
                          "k.session.send(k.iopub_socket, 'display_data', "
                          "{'data': {'text/plain': 'by session.send'}, 'metadata': {}}, "
                          "parent=k.get_parent())")
    assert reply["status"] == "ok"
    assert stream_text(msgs) == "by send_response\n"
    shown = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert shown == [{"text/plain": "by session.send"}]


def test_output_widget_captures_through_the_parent(kernel):
    # ipywidgets' Output widget reads get_parent()/set_parent(): its msg_id is the cell's
    _, kc = kernel
    code = ("import ipywidgets as w\nout = w.Output()\nwith out:\n    print('inside')\n"
            "    inner = out.msg_id\n"
            "print(inner == get_ipython().kernel.get_parent()['header']['msg_id'])")
    reply, msgs = run(kc, code)
    assert reply["status"] == "ok"
    assert stream_text(msgs).endswith("True\n")


def test_libraries_see_a_notebook_frontend(kernel):
    name, kc = kernel
    code = ("from rich.console import Console\nprint(Console().is_jupyter)\n"
            "print(type(get_ipython()).__name__, type(get_ipython()).__module__.split('.')[0])")
    assert _out(kc, code) == "True\nZMQInteractiveShell ipykernel\n"


def test_plotly_default_renderer_is_the_mimetype(kernel):
    """plotly picks "plotly_mimetype" for ipykernel's shell class; anything else gets
    "plotly_mimetype+notebook", which embeds all of plotly.js in the first figure."""
    name, kc = kernel
    assert _out(kc, "import plotly.io as pio; print(pio.renderers.default)") == "plotly_mimetype\n"


def test_the_shell_class_module_is_not_imported(geokernel_only):
    """geokernel only (on ipykernel the module is real): the class's module name is a label
    for frontend checks; nothing imports ipykernel, and the repr says whose shell it is."""
    _, kc = geokernel_only
    code = ("import sys, inspect\nprint('ipykernel' in sys.modules, "
            "inspect.getmodule(type(get_ipython())), repr(get_ipython()).split(' object')[0])")
    assert _out(kc, code) == "False None <geokernel.ipython.shell.ZMQInteractiveShell\n"
