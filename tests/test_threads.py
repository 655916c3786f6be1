"""Output of other OS threads routed as on ipykernel 7: to the request being handled now, unless
the thread set an explicit parent; the parent APIs libraries use."""
from __future__ import annotations

from compare_kernels import drain, gather, kernel_fixture, run, stream_text, text_by_parent

kernel = kernel_fixture()


def test_long_lived_thread_prints_into_the_current_cell(kernel):
    name, kc = kernel
    run(kc, "import threading, queue, time\nq = queue.Queue()\n"
            "def worker():\n    while True:\n        item = q.get()\n        if item is None: return\n        print('got', item)\n"
            "wt = threading.Thread(target=worker, daemon=True); wt.start()")
    for item in ("one", "two"):
        _, msgs = run(kc, f"q.put({item!r}); time.sleep(0.3)")
        assert stream_text(msgs) == f"got {item}\n", (name, item)
    run(kc, "q.put(None); wt.join()")


def test_script_magic_twice(kernel):
    name, kc = kernel
    for word in ("first", "second"):
        reply, msgs = run(kc, f"%%bash\necho {word}")
        assert reply["status"] == "ok"
        assert stream_text(msgs) == f"{word}\n", (name, word, msgs)


def test_reused_executor_worker(kernel):
    name, kc = kernel
    run(kc, "from concurrent.futures import ThreadPoolExecutor\nex = ThreadPoolExecutor(1)")
    for word in ("one", "two"):
        _, msgs = run(kc, f"ex.submit(print, {word!r}).result()")
        assert stream_text(msgs) == f"{word}\n", (name, word)


def test_thread_started_by_a_thread(kernel):
    name, kc = kernel
    _, msgs = run(kc, "import threading\ndef inner(): print('inner')\n"
                      "def outer():\n    t = threading.Thread(target=inner); t.start(); t.join(); print('outer')\n"
                      "t = threading.Thread(target=outer); t.start(); t.join()")
    assert stream_text(msgs) == "inner\nouter\n", name


def test_set_thread_parent_supersedes(kernel):
    name, kc = kernel
    drain(kc)
    c1 = kc.execute("import sys, threading\np1 = get_ipython().get_parent()")
    run(kc, "pass")  # c1 done
    c2 = kc.execute(
        "def f():\n"
        "    tok = get_ipython().set_thread_parent(p1)\n"
        "    print('to cell 1'); sys.stdout.flush()\n"
        "    get_ipython().reset_thread_parent(tok)\n"
        "    print('to cell 2')\n"
        "    tok = sys.stdout.set_thread_parent(p1)\n"
        "    print('stream api'); sys.stdout.flush()\n"
        "    sys.stdout.reset_thread_parent(tok)\n"
        "t = threading.Thread(target=f); t.start(); t.join()\nimport time; time.sleep(0.2)")
    by_parent = text_by_parent(gather(kc, 1.5))
    assert by_parent.get(c1) == "to cell 1\nstream api\n", (name, by_parent)
    assert by_parent.get(c2) == "to cell 2\n", (name, by_parent)


def test_get_parent_from_a_thread(kernel):
    name, kc = kernel
    drain(kc)
    code = ("import threading\nseen = []\n"
            "def f():\n    seen.append(get_ipython().get_parent()['header']['msg_id'])\n"
            "    seen.append(get_ipython().kernel.get_parent()['header']['msg_id'])\n"
            "t = threading.Thread(target=f); t.start(); t.join()\n"
            "print(seen[0] == seen[1] == get_ipython().get_parent()['header']['msg_id'])")
    _, msgs = run(kc, code)
    assert stream_text(msgs) == "True\n", (name, msgs)


def test_output_widget_fed_from_a_thread(kernel):
    name, kc = kernel
    run(kc, "import ipywidgets as widgets, threading\nout = widgets.Output()")
    _, msgs = run(kc, "def f():\n    with out:\n        print('in widget')\n"
                      "t = threading.Thread(target=f); t.start(); t.join()")
    # the widget captures output whose parent is the msg_id it was told in a comm_msg: that
    # comm_msg must arrive before the stream, and the reset after it
    kinds = []
    for m in msgs:
        if m["msg_type"] == "comm_msg":
            state = m["content"]["data"].get("state", {})
            if "msg_id" in state:
                kinds.append("set" if state["msg_id"] else "unset")
        elif m["msg_type"] == "stream":
            kinds.append(m["content"]["text"])
    assert kinds == ["set", "in widget\n", "unset"], (name, kinds)
