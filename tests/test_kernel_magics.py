"""The magics ipykernel adds to IPython's exist on geokernel and answer as there: %lsmagic lists
the same magics, %edit sends an edit_magic payload, %less/%more/%man page, %clear, %autosave,
%connect_info. Every test runs on both kernels."""
from __future__ import annotations

import json

from compare_kernels import kernel_fixture, run, stream_text

kernel = kernel_fixture()

KERNEL_MAGICS = ["%autosave", "%clear", "%connect_info", "%edit", "%less", "%man", "%more",
                 "%qtconsole", "%subshell"]


def _ok(kc, code):
    reply, msgs = run(kc, code)
    assert reply["status"] == "ok", reply
    return reply, msgs


def test_lsmagic_lists_the_kernel_magics(kernel):
    _, kc = kernel
    _, msgs = _ok(kc, "%lsmagic")
    text = [m for m in msgs if m["msg_type"] == "execute_result"][0]["content"]["data"]["text/plain"]
    listed = set(text.replace("\\n", " ").split())
    assert [m for m in KERNEL_MAGICS if m not in listed] == []


def test_edit_asks_the_frontend(kernel, tmp_path):
    _, kc = kernel
    f = tmp_path / "mod.py"
    f.write_text("x = 1\n")
    reply, _ = _ok(kc, f"%edit {f}")
    assert reply["payload"] == [{"source": "edit_magic", "filename": str(f), "line_number": None}]


def test_more_and_less_page_the_file(kernel, tmp_path):
    _, kc = kernel
    f = tmp_path / "notes.txt"
    f.write_text("hello pager\n")
    for magic in ("%more", "%less"):
        reply, _ = _ok(kc, f"{magic} {f}")
        assert reply["payload"] == [{"source": "page", "data": {"text/plain": "hello pager\n"},
                                     "start": 0}]
    reply, _ = run(kc, "%less")
    assert reply["status"] == "error" and reply["ename"] == "UsageError"


def test_clear_and_autosave(kernel):
    _, kc = kernel
    _, msgs = _ok(kc, "%clear")
    assert stream_text(msgs).startswith("\x1b[H\x1b[2J")  # `clear` on the command's terminal
    _, msgs = _ok(kc, "%autosave 60")
    js = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert js == [{"application/javascript": "IPython.notebook.set_autosave_interval(60000)"}]
    assert stream_text(msgs) == "Autosaving every 60 seconds\n"
    _, msgs = _ok(kc, "%autosave 0")
    assert stream_text(msgs) == "Autosave disabled\n"


def test_connect_info_prints_the_connection_file(kernel):
    _, kc = kernel
    _, msgs = _ok(kc, "%connect_info")
    text = stream_text(msgs)
    info = json.loads(text.split("\n\n")[0])
    assert info["shell_port"] == kc.shell_port and info["key"] == kc.session.key.decode()
    assert "jupyter <app> --existing" in text


def test_subshell_magic_answers(kernel):
    name, kc = kernel
    _, msgs = _ok(kc, "%subshell")
    out = stream_text(msgs)
    # both have subshells: this cell's id (None, the main shell) and the list, as ipykernel 7.4
    assert out.startswith("subshell id: None\n") and "subshell list: []" in out, out
