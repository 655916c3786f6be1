"""Code written for ipykernel's deprecated `ipykernel.comm.Comm` (matplotlib's nbagg backend,
bokeh's push_notebook) talks to the frontend on geokernel as on ipykernel: comm_open and
comm_msg go out, frontend messages reach on_msg. geokernel binds that class (only when user
code imports it) to its own comms; it never imports ipykernel itself."""
from __future__ import annotations

from compare_kernels import kernel_fixture, run, stream_text

kernel = kernel_fixture()
geokernel_only = kernel_fixture(kernels=("geokernel",))


def _comm_msgs(msgs):
    return [(m["msg_type"], m["content"].get("target_name"), m["content"]["data"])
            for m in msgs if m["msg_type"].startswith("comm_")]


def test_ipykernel_comm_opens_and_sends(kernel):
    _, kc = kernel
    reply, msgs = run(kc, "from ipykernel.comm import Comm\n"
                          "c = Comm(target_name='legacy', data={'x': 1})\nc.send({'y': 2})")
    assert reply["status"] == "ok", reply
    assert _comm_msgs(msgs) == [("comm_open", "legacy", {"x": 1}), ("comm_msg", None, {"y": 2})]
    assert "DeprecationWarning" in stream_text(msgs, "stderr")  # ipykernel 7 warns; so do we


def test_frontend_messages_reach_on_msg(kernel):
    _, kc = kernel
    reply, msgs = run(kc, "from ipykernel.comm import Comm\ngot = []\n"
                          "c2 = Comm(target_name='legacy2', show_warning=False)\n"
                          "c2.on_msg(lambda m: got.append(m['content']['data']))\nc2.comm_id")
    comm_id = [m for m in msgs if m["msg_type"] == "execute_result"][0]["content"]["data"]["text/plain"].strip("'")
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"from": "frontend"}})
    kc.shell_channel.send(msg)
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if (m["parent_header"].get("msg_id") == msg["header"]["msg_id"]
                and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"):
            break
    _, msgs = run(kc, "print(got)")
    assert stream_text(msgs) == "[{'from': 'frontend'}]\n"


def test_matplotlib_nbagg_opens_its_comm(kernel):
    _, kc = kernel
    reply, msgs = run(kc, "import matplotlib\nmatplotlib.use('nbagg')\n"
                          "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert reply["status"] == "ok", reply
    comms = _comm_msgs(msgs)
    assert comms and comms[0][:2] == ("comm_open", "matplotlib"), comms
    assert [c[0] for c in comms[1:]] == ["comm_msg", "comm_msg"]  # resize, refresh


def test_one_thread_after_importing_ipykernel_comm(geokernel_only):
    """geokernel only (ipykernel has threads of its own); a fresh kernel: numpy, which the
    matplotlib test imports, starts OpenBLAS threads."""
    _, kc = geokernel_only
    _, msgs = run(kc, "import ipykernel.comm, os\n"
                      "print([open(f'/proc/self/task/{t}/comm').read().strip() "
                      "for t in os.listdir('/proc/self/task')])")
    assert stream_text(msgs) == "['python']\n"
