"""asyncio in cells: one persistent loop, background tasks keep running between cells and print
into the cell that scheduled them (as on ipykernel); top-level await; asyncio.run (which
ipykernel cannot run)."""
from __future__ import annotations

from compare_kernels import drain, gather, kernel_fixture, run, stream_text, text_by_parent

kernel = kernel_fixture()

BACKGROUND = """
import asyncio
async def ticker(tag, n, delay):
    for i in range(n):
        print(tag, i)
        await asyncio.sleep(delay)
    return tag
"""


def test_background_task_keeps_running_and_prints_into_its_cell(kernel):
    name, kc = kernel
    run(kc, BACKGROUND)
    drain(kc)
    c1 = kc.execute("t1 = asyncio.get_event_loop().create_task(ticker('a', 4, 0.15))")
    # the next cell awaits: the background task runs during it, but still prints into cell 1
    c2 = kc.execute("await asyncio.sleep(0.3); print('second')")
    msgs = gather(kc, 2.0)
    by_parent = text_by_parent(msgs)
    assert by_parent.get(c1) == "a 0\na 1\na 2\na 3\n", (name, by_parent)
    assert by_parent.get(c2) == "second\n", (name, by_parent)
    reply, _ = run(kc, "print(t1.done(), t1.result())")
    assert reply["status"] == "ok"


def test_task_runs_while_idle_between_cells(kernel):
    name, kc = kernel
    run(kc, BACKGROUND)
    c1 = kc.execute("t2 = asyncio.ensure_future(ticker('idle', 3, 0.1))")
    msgs = gather(kc, 1.5)  # no request at all while the task runs
    assert text_by_parent(msgs).get(c1) == "idle 0\nidle 1\nidle 2\n", name
    _, msgs = run(kc, "print(t2.done(), t2.result())")
    assert stream_text(msgs) == "True idle\n"


def test_create_task_and_running_loop_in_a_plain_cell(kernel):
    name, kc = kernel
    reply, msgs = run(kc, "import asyncio\nl = asyncio.get_running_loop()\n"
                          "t3 = asyncio.create_task(asyncio.sleep(0.05, 'slept'))\n"
                          "print(l.is_running(), l is asyncio.get_event_loop())")
    assert reply["status"] == "ok", (name, reply)
    assert stream_text(msgs) == "True True\n"
    gather(kc, 0.3)
    _, msgs = run(kc, "print(t3.result())")
    assert stream_text(msgs) == "slept\n"


def test_top_level_await_result_and_error(kernel):
    name, kc = kernel
    _, msgs = run(kc, "import asyncio\nawait asyncio.sleep(0.01)\n6 * 7")
    results = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]
    assert results == ["42"]
    reply, msgs = run(kc, "async def boom(): raise ValueError('async boom')\nawait boom()")
    assert reply["status"] == "error" and reply["ename"] == "ValueError"
    assert [m["content"]["evalue"] for m in msgs if m["msg_type"] == "error"] == ["async boom"]


def test_asyncio_run_in_a_cell(kernel):
    name, kc = kernel
    code = "import asyncio\nasync def main():\n    await asyncio.sleep(0.01)\n    return 'done'\nasyncio.run(main())"
    reply, msgs = run(kc, code)
    if name == "python3":
        # ipykernel runs cells inside its own running loop: asyncio.run cannot work there
        assert reply["status"] == "error" and reply["ename"] == "RuntimeError"
        return
    assert reply["status"] == "ok", reply
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["'done'"]
    # the kernel's loop is back afterwards, and tasks still run on it
    _, msgs = run(kc, "t4 = asyncio.get_event_loop().create_task(asyncio.sleep(0, 'back'))\n"
                      "await asyncio.sleep(0.01)\nprint(t4.result(), asyncio.get_running_loop() is t4.get_loop())")
    assert stream_text(msgs) == "back True\n"


def test_run_until_complete_on_the_kernel_loop(kernel):
    name, kc = kernel
    reply, msgs = run(kc, "import asyncio\nasyncio.get_event_loop().run_until_complete(asyncio.sleep(0.01, 'ruc'))")
    if name == "python3":
        assert reply["status"] == "error" and reply["ename"] == "RuntimeError"  # already running
        return
    assert reply["status"] == "ok", reply
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["'ruc'"]


def test_interrupt_await_cell_keeps_background_tasks(kernel):
    name, kc = kernel
    run(kc, BACKGROUND)
    drain(kc)
    run(kc, "bg = asyncio.ensure_future(ticker('bg', 1000, 0.05))")
    msg_id = kc.execute("await asyncio.sleep(100)")
    gather(kc, 0.5)
    # the interrupt goes over control, as JupyterLab sends it
    kc.control_channel.send(kc.session.msg("interrupt_request", {}))
    reply = None
    while reply is None:
        m = kc.get_shell_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id:
            reply = m["content"]
    # ipykernel reports the cancelled cell task as CancelledError; geokernel as KeyboardInterrupt
    expected = "CancelledError" if name == "python3" else "KeyboardInterrupt"
    assert reply["status"] == "error" and reply["ename"] == expected, reply
    drain(kc)
    _, msgs = run(kc, "await asyncio.sleep(0.2)\nprint(bg.done())\nbg.cancel()")
    assert stream_text(msgs) == "False\n", name


COMM_TASKS = """
import asyncio
def _aio_target(comm, open_msg):
    def on_msg(msg):
        async def later(tag):
            await asyncio.sleep(0.2)
            print('task from', tag)
        asyncio.get_running_loop().create_task(later(msg['content']['data']['tag']))
        print('handler ran')
    comm.on_msg(on_msg)
get_ipython().kernel.comm_manager.register_target('aio-tasks', _aio_target)
"""


def test_tasks_made_by_a_comm_handler_print_into_its_message(kernel):
    """As on ipykernel: a task a comm message's handler creates belongs to that message, even
    when it prints after a later cell started."""
    import uuid

    name, kc = kernel
    run(kc, COMM_TASKS)
    drain(kc)
    comm_id = uuid.uuid4().hex
    kc.shell_channel.send(kc.session.msg("comm_open", {"comm_id": comm_id,
                                                       "target_name": "aio-tasks", "data": {}}))
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"tag": "m1"}})
    kc.shell_channel.send(msg)
    cell = kc.execute("import time; time.sleep(0.5); print('cell')")
    by_parent = text_by_parent(gather(kc, 2.0))
    assert by_parent.get(msg["header"]["msg_id"]) == "handler ran\ntask from m1\n", (name, by_parent)
    assert by_parent.get(cell) == "cell\n", (name, by_parent)
