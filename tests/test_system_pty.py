"""`!cmd` runs on a pseudo-terminal as on ipykernel 7.4 (which uses IPython's pexpect handler):
the command sees a tty, line-buffers, prints columns for an 80x24 window, its stderr is merged
into stdout with the terminal's "\\r\\n", `_exit_code` gets its status, and an interrupt types
^C on the terminal (the cell goes on, as on ipykernel). Every test runs on both kernels.
Captured commands (`x = !cmd`) stay on pipes on both."""
from __future__ import annotations

import queue
import time

import pytest

from compare_kernels import KERNELS, run, start, stop, stream_text


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request):
    km, kc = start(request.param)
    yield request.param, km, kc
    stop(km, kc)


def _result(kc, expr: str):
    reply, msgs = run(kc, expr)
    assert reply["status"] == "ok", reply
    return [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]


def _wait_for_output(kc, msg_id: str, timeout: float = 20) -> list:
    """iopub messages of msg_id until its first stream output (the command has started)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        if m["parent_header"].get("msg_id") == msg_id:
            seen.append(m)
            if m["msg_type"] == "stream":
                return seen
    raise AssertionError("the command printed nothing")


def _finish(kc, msg_id: str, seen: list, timeout: float = 30):
    """The reply and the rest of the iopub messages of msg_id (up to idle)."""
    deadline = time.monotonic() + timeout
    reply = None
    while reply is None:
        m = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if m["parent_header"].get("msg_id") == msg_id:
            reply = m["content"]
    msgs = list(seen)
    while not (msgs and msgs[-1]["msg_type"] == "status"
               and msgs[-1]["content"]["execution_state"] == "idle"):
        m = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if m["parent_header"].get("msg_id") == msg_id:
            msgs.append(m)
    return reply, msgs


def test_the_command_has_a_terminal(kernel):
    _, _, kc = kernel
    reply, msgs = run(kc, "!tty; stty size")
    assert reply["status"] == "ok"
    tty, size = stream_text(msgs).split("\r\n")[:2]
    assert tty.startswith("/dev/pts/"), tty
    assert size == "24 80"  # pexpect's default window, which ipykernel's commands get
    _, msgs = run(kc, '!python -c "import sys; print(sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty())"')
    assert stream_text(msgs) == "True True True\r\n"


def test_stderr_is_merged_into_stdout(kernel):
    _, _, kc = kernel
    _, msgs = run(kc, "!echo out; echo err >&2; echo out2")
    assert stream_text(msgs) == "out\r\nerr\r\nout2\r\n"
    assert stream_text(msgs, "stderr") == ""


def test_a_python_script_streams_its_lines_one_by_one(kernel, tmp_path):
    """Without PYTHONUNBUFFERED a Python child block-buffers a pipe, but line-buffers a tty:
    each line comes in its own message, while the script still runs."""
    _, _, kc = kernel
    script = tmp_path / "slow.py"
    script.write_text("import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.5)\n")
    reply, msgs = run(kc, f"!env -u PYTHONUNBUFFERED python {script}")
    assert reply["status"] == "ok"
    texts = [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"]
    assert texts == ["0\r\n", "1\r\n", "2\r\n"]


def test_ls_prints_columns_for_80_characters(kernel, tmp_path):
    _, _, kc = kernel
    for i in range(30):
        (tmp_path / f"file_{i:02d}_abcdef").touch()
    _, msgs = run(kc, f"!ls {tmp_path}")
    lines = stream_text(msgs).split("\r\n")
    assert lines[-1] == ""
    rows = [line.split("\t") for line in lines[:-1]]
    # 14-character names, tab-separated: 5 columns fit in 80, so 6 rows
    assert len(rows) == 6 and all(len(r) == 5 for r in rows), rows
    assert rows[0][:2] == ["file_00_abcdef", "file_06_abcdef"]


def test_exit_status_goes_to_exit_code(kernel):
    _, _, kc = kernel
    reply, msgs = run(kc, "!exit 3")
    assert reply["status"] == "ok" and not [m for m in msgs if m["msg_type"] == "execute_result"]
    assert _result(kc, "_exit_code") == ["3"]
    run(kc, "!kill -TERM $$")
    assert _result(kc, "_exit_code") == ["-15"]
    run(kc, "!true")
    assert _result(kc, "_exit_code") == ["0"]


def test_captured_commands_stay_on_pipes(kernel):
    _, _, kc = kernel
    assert _result(kc, "x = !tty; echo hi\nx") == ["['not a tty', 'hi']"]


def test_variables_expand_and_background_is_refused(kernel):
    _, _, kc = kernel
    _, msgs = run(kc, "word = 'hello'\n!echo {word} $word")
    assert stream_text(msgs) == "hello hello\r\n"
    reply, _ = run(kc, "!sleep 1 &")
    assert reply["status"] == "error" and reply["ename"] == "OSError"


# unusual arguments: the pgrep below must not find another test's (or kernel's) `sleep 30`
@pytest.mark.parametrize("command", ["sleep 29.71", "cat -u -"])
def test_interrupt_types_ctrl_c_and_the_cell_goes_on(kernel, command):
    """`!cat` reads the terminal (nothing comes: it waits, on both kernels); `!sleep`
    waits. The interrupt stops the command, the cell carries on after it, as on ipykernel."""
    name, km, kc = kernel
    msg_id = kc.execute(f"print('before', flush=True)\n!{command}\nprint('after')")
    seen = _wait_for_output(kc, msg_id)
    time.sleep(0.5)  # let the shell start the command
    assert kc.hb_channel.is_beating()
    km.interrupt_kernel()
    reply, msgs = _finish(kc, msg_id, seen)
    assert reply["status"] == "ok", reply
    text = stream_text(msgs)
    assert text.startswith("before\n") and "^C" in text and text.endswith("after\n"), text
    assert _result(kc, "_exit_code") == ["-2"]  # SIGINT
    _, msgs = run(kc, f"!pgrep -fx '{command}' || echo none")
    assert stream_text(msgs) == "none\r\n", "the command is still running"


def test_a_command_that_traps_ctrl_c_reports_its_own_status(kernel):
    name, km, kc = kernel
    msg_id = kc.execute("!trap 'echo got INT; exit 7' INT; echo started; while :; do sleep 0.1; done")
    seen = _wait_for_output(kc, msg_id)
    km.interrupt_kernel()
    reply, msgs = _finish(kc, msg_id, seen)
    assert reply["status"] == "ok"
    assert stream_text(msgs).replace("\r\n", "\n").endswith("got INT\n")
    assert _result(kc, "_exit_code") == ["7"]


def test_control_and_heartbeat_answer_while_a_command_runs(kernel):
    name, km, kc = kernel
    msg_id = kc.execute("!echo started; sleep 3; echo done")
    seen = _wait_for_output(kc, msg_id)
    assert kc.hb_channel.is_beating()
    ctl = kc.session.msg("kernel_info_request")
    kc.control_channel.send(ctl)
    r = kc.get_control_msg(timeout=5)
    assert r["parent_header"]["msg_id"] == ctl["header"]["msg_id"]
    with pytest.raises(queue.Empty):  # the command is still running: no execute reply yet
        kc.get_shell_msg(timeout=0.2)
    reply, msgs = _finish(kc, msg_id, seen)
    assert reply["status"] == "ok"
    assert stream_text(msgs) == "started\r\ndone\r\n"
