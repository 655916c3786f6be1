"""The dispatcher (geokernel.kernel.Kernel) on the in-memory transport: no sockets, no IPython.

A scripted interpreter stands in for IPython: `sleep:S` parks the cell for S seconds (as a
cooperative wait does), `fail` ends in an error, `ask:PROMPT` asks for input and prints it.
"""
from __future__ import annotations

import gevent
import pytest

from geokernel.interpreter import Interpreter
from geokernel.iopub import Publisher
from geokernel.kernel import Kernel
from geokernel.message import Message, make_header
from geokernel.transport_memory import MemoryTransport
from geokernel.wire import Codec, Signer


class ScriptedInterpreter(Interpreter):
    def __init__(self, publisher, request_input=None):
        super().__init__(publisher, request_input)
        self.count = 1
        self.ran: list = []

    @property
    def execution_count(self) -> int:
        return self.count

    def kernel_info(self) -> dict:
        return {"language_info": {"name": "scripted"}}

    def do_execute(self, code, silent, store_history, user_expressions, allow_stdin,
                   cell_id=None, cell_meta=None) -> dict:
        self.ran.append(code)
        count = self.count
        if store_history:
            self.count += 1
        if code.startswith("sleep:"):
            gevent.sleep(float(code[len("sleep:"):]))
        elif code == "fail":
            self.publish_error("ValueError", "scripted", ["ValueError: scripted"])
            return {"status": "error", "ename": "ValueError", "evalue": "scripted",
                    "traceback": ["ValueError: scripted"], "execution_count": count}
        elif code.startswith("ask:"):
            value = self.request_input(code[len("ask:"):], False)
            self.publisher.publish("stream", {"name": "stdout", "text": value})
        return {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}


SESSION = "client-session"


@pytest.fixture()
def kernel():
    codec = Codec(Signer(b"secret"))
    transport = MemoryTransport(codec, "kernel-session")
    publisher = Publisher(transport.send, "kernel-session")
    k = Kernel("kernel-session", None, transport.send, publisher, {"shell": 1})
    k.attach_interpreter(ScriptedInterpreter(publisher, request_input=k.request_input))
    k.start()
    transport.start({"shell": k.on_shell, "control": k.on_control, "stdin": k.on_stdin})
    yield k, transport
    k.worker.kill()


def request(transport, channel, msg_type, content=None, ident=b"client"):
    msg = Message(make_header(msg_type, SESSION), {}, {}, content or {}, identities=[ident])
    transport.inject(channel, msg)
    return msg.msg_id


def execute(transport, code, **content):
    return request(transport, "shell", "execute_request", {"code": code, **content})


def replies(transport, channel, n, timeout=5.0):
    return [transport.receive(channel, timeout) for _ in range(n)]


def iopub_for(transport, msg_id, timeout=5.0):
    """iopub messages of one request, up to its idle status."""
    out = []
    while True:
        m = transport.receive("iopub", timeout)
        if m.parent_header.get("msg_id") != msg_id:
            continue
        out.append(m)
        if m.msg_type == "status" and m.content["execution_state"] == "idle":
            return out


def test_replies_come_in_request_order_and_go_to_the_sender(kernel):
    _, t = kernel
    ids = [execute(t, f"sleep:0.0{i}") for i in (3, 1, 2)]
    got = replies(t, "shell", 3)
    assert [r.parent_header["msg_id"] for r in got] == ids
    assert all(r.identities == [b"client"] and r.msg_type == "execute_reply" for r in got)
    assert [r.content["execution_count"] for r in got] == [1, 2, 3]


def test_each_request_is_bracketed_by_busy_and_idle(kernel):
    _, t = kernel
    msg_id = execute(t, "ask:prompt")
    t.receive("stdin")  # the cell asks; answer it so the cell ends
    request(t, "stdin", "input_reply", {"value": "v"})
    msgs = iopub_for(t, msg_id)
    kinds = [(m.msg_type, m.content.get("execution_state")) for m in msgs]
    assert kinds[0] == ("status", "busy") and kinds[-1] == ("status", "idle")
    assert ("execute_input", None) in kinds and ("stream", None) in kinds
    assert all(m.parent_header["msg_id"] == msg_id for m in msgs)


def test_an_error_aborts_what_was_queued_before_its_reply(kernel):
    k, t = kernel
    ids = [execute(t, "fail"), execute(t, "sleep:0"), execute(t, "sleep:0")]
    got = replies(t, "shell", 3)
    assert [r.content["status"] for r in got] == ["error", "aborted", "aborted"]
    assert [r.parent_header["msg_id"] for r in got] == ids
    assert k.interp.ran == ["fail"]  # aborted cells never reach the interpreter
    # the queue has drained: what comes after the abort runs again
    execute(t, "sleep:0")
    assert t.receive("shell").content["status"] == "ok"


def test_stop_on_error_false_does_not_abort(kernel):
    _, t = kernel
    execute(t, "fail", stop_on_error=False)
    execute(t, "sleep:0")
    assert [r.content["status"] for r in replies(t, "shell", 2)] == ["error", "ok"]


def test_stdin_round_trip_matches_the_request(kernel):
    _, t = kernel
    msg_id = execute(t, "ask:name? ")
    asked = t.receive("stdin")
    assert asked.msg_type == "input_request"
    assert asked.content == {"prompt": "name? ", "password": False}
    assert asked.parent_header["msg_id"] == msg_id and asked.identities == [b"client"]
    reply = Message(make_header("input_reply", SESSION), asked.header, {}, {"value": "geo"},
                    identities=[b"client"])
    t.inject("stdin", reply)
    msgs = iopub_for(t, msg_id)
    assert [m.content["text"] for m in msgs if m.msg_type == "stream"] == ["geo"]
    assert t.receive("shell").content["status"] == "ok"


def test_input_is_refused_when_the_request_does_not_allow_stdin(kernel):
    _, t = kernel
    execute(t, "ask:x", allow_stdin=False)
    reply = t.receive("shell")
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "StdinNotAllowed"
    with pytest.raises(gevent.queue.Empty):
        t.receive("stdin", timeout=0.05)


def test_control_is_answered_while_a_shell_cell_runs(kernel):
    _, t = kernel
    execute(t, "sleep:0.5")
    gevent.sleep(0.01)  # the cell is running
    request(t, "control", "kernel_info_request")
    info = t.receive("control")
    assert info.msg_type == "kernel_info_reply" and info.content["status"] == "ok"
    assert t.outbox["shell"].empty()  # the cell is still running
    assert t.receive("shell").msg_type == "execute_reply"


def test_unknown_requests_get_an_error_reply(kernel):
    _, t = kernel
    request(t, "shell", "no_such_request")
    reply = t.receive("shell")
    assert reply.msg_type == "no_such_reply"
    assert reply.content["status"] == "error" and reply.content["ename"] == "UnknownMessageType"


def test_badly_signed_messages_are_dropped(kernel):
    k, t = kernel
    frames = Codec(Signer(b"wrong")).serialize(
        Message(make_header("execute_request", SESSION), {}, {}, {"code": "sleep:0"},
                identities=[b"client"]))
    t.deliver("shell", frames)
    with pytest.raises(gevent.queue.Empty):
        t.receive("shell", timeout=0.1)
    assert k.interp.ran == []


# ---- kernel subshells (JEP 91) and request contexts ------------------------------------------
def control(transport, msg_type, content=None):
    request(transport, "control", msg_type, content)
    return transport.receive("control")


def on_subshell(transport, subshell_id, code, ident=b"client", **content):
    msg = Message(make_header("execute_request", SESSION), {}, {}, {"code": code, **content},
                  identities=[ident])
    msg.header["subshell_id"] = subshell_id
    transport.inject("shell", msg)
    return msg.msg_id


def test_subshell_lifecycle_on_control(kernel):
    _, t = kernel
    created = control(t, "create_subshell_request")
    assert created.msg_type == "create_subshell_reply" and created.content["status"] == "ok"
    sid = created.content["subshell_id"]
    assert control(t, "list_subshell_request").content == {"status": "ok", "subshell_id": [sid]}
    assert control(t, "delete_subshell_request", {"subshell_id": sid}).content == {"status": "ok"}
    assert control(t, "list_subshell_request").content["subshell_id"] == []
    again = control(t, "delete_subshell_request", {"subshell_id": sid}).content
    assert again["status"] == "error" and again["ename"] == "UnknownSubshellError"
    bad = control(t, "delete_subshell_request", {}).content
    assert bad["status"] == "error" and bad["ename"] == "ValueError"


def test_a_subshell_answers_while_the_main_shell_is_busy(kernel):
    k, t = kernel
    sid = control(t, "create_subshell_request").content["subshell_id"]
    main = execute(t, "sleep:0.5")
    sub = on_subshell(t, sid, "sleep:0")
    first, second = replies(t, "shell", 2)
    assert [first.parent_header["msg_id"], second.parent_header["msg_id"]] == [sub, main]
    assert first.parent_header["subshell_id"] == sid
    msgs = iopub_for(t, sub)  # its own busy/idle, with the subshell request as parent
    assert [m.content["execution_state"] for m in msgs if m.msg_type == "status"] == \
        ["busy", "idle"]


def test_unknown_subshell_gets_an_error_reply_with_busy_and_idle(kernel):
    _, t = kernel
    msg_id = on_subshell(t, "no-such-subshell", "sleep:0")
    reply = t.receive("shell")
    assert reply.parent_header["msg_id"] == msg_id
    assert reply.content["status"] == "error" and reply.content["ename"] == "UnknownSubshellError"
    assert [m.content["execution_state"] for m in iopub_for(t, msg_id)] == ["busy", "idle"]


def test_an_error_aborts_only_the_queue_of_its_own_shell(kernel):
    k, t = kernel
    sid = control(t, "create_subshell_request").content["subshell_id"]
    ids = [on_subshell(t, sid, "fail"), on_subshell(t, sid, "sleep:0"), execute(t, "sleep:0.01")]
    got = {r.parent_header["msg_id"]: r.content["status"] for r in replies(t, "shell", 3)}
    assert [got[i] for i in ids] == ["error", "aborted", "ok"]


def test_deleting_a_busy_subshell_lets_its_cell_finish_and_drops_the_queue(kernel):
    k, t = kernel
    sid = control(t, "create_subshell_request").content["subshell_id"]
    running = on_subshell(t, sid, "sleep:0.2")
    on_subshell(t, sid, "sleep:0")  # queued behind it: dropped
    gevent.sleep(0.05)
    assert control(t, "delete_subshell_request", {"subshell_id": sid}).content["status"] == "ok"
    reply = t.receive("shell")
    assert reply.parent_header["msg_id"] == running and reply.content["status"] == "ok"
    with pytest.raises(gevent.queue.Empty):
        t.receive("shell", timeout=0.3)
    assert k.interp.ran.count("sleep:0") == 0


def test_input_from_a_subshell_goes_to_its_own_client(kernel):
    _, t = kernel
    sid = control(t, "create_subshell_request").content["subshell_id"]
    main = execute(t, "sleep:0.3")
    sub = on_subshell(t, sid, "ask:who? ", ident=b"console")
    asked = t.receive("stdin")
    assert asked.parent_header["msg_id"] == sub and asked.identities == [b"console"]
    t.inject("stdin", Message(make_header("input_reply", SESSION), asked.header, {},
                              {"value": "sub"}, identities=[b"console"]))
    streams = [m for m in iopub_for(t, sub) if m.msg_type == "stream"]
    assert [m.content["text"] for m in streams] == ["sub"]
    got = {r.parent_header["msg_id"] for r in replies(t, "shell", 2)}
    assert got == {main, sub}


def test_streams_keep_the_parent_of_the_greenlet_that_wrote(kernel):
    """Two requests write to one stream in turns: each message goes to its writer's request."""
    from geokernel import context
    from geokernel.context import RequestContext
    from geokernel.iostream import OutStream

    k, t = kernel
    out = OutStream("stdout", k.publisher)
    try:
        heads = [Message(make_header("execute_request", SESSION), {}, {}, {}) for _ in range(2)]

        def writer(head, tag):
            context.activate(RequestContext(head))
            for i in range(5):
                out.write(f"{tag}{i}\n")
                gevent.sleep(0)

        gevent.joinall([gevent.spawn(writer, heads[0], "a"), gevent.spawn(writer, heads[1], "b")])
        out.flush()
        text: dict = {}
        while not t.outbox["iopub"].empty():
            m = t.receive("iopub")
            if m.msg_type == "stream":
                pid = m.parent_header["msg_id"]
                text[pid] = text.get(pid, "") + m.content["text"]
        assert text == {heads[0].msg_id: "a0\na1\na2\na3\na4\n",
                        heads[1].msg_id: "b0\nb1\nb2\nb3\nb4\n"}
    finally:
        out.close_watchers()
        k.publisher.streams.remove(out)


def test_greenlets_spawned_by_a_request_publish_under_it(kernel):
    from geokernel import context
    from geokernel.context import RequestContext

    k, t = kernel
    head = Message(make_header("execute_request", SESSION), {}, {}, {})
    seen = []

    def request_greenlet():
        context.activate(RequestContext(head))
        gevent.spawn(lambda: seen.append(context.current_parent())).join()

    gevent.spawn(request_greenlet).join()
    assert seen == [head.header]


def test_subshells_beyond_the_limit_are_refused(kernel):
    k, t = kernel
    k.subshells.max_subshells = 2
    ids = [control(t, "create_subshell_request").content.get("subshell_id") for _ in range(2)]
    refused = control(t, "create_subshell_request").content
    assert refused["status"] == "error" and refused["ename"] == "TooManySubshells"
    control(t, "delete_subshell_request", {"subshell_id": ids[0]})
    assert control(t, "create_subshell_request").content["status"] == "ok"


def test_main_shell_comm_messages_run_beside_a_running_cell_without_status(kernel):
    k, t = kernel
    seen = []
    k.shell_handlers["comm_msg"] = lambda msg, channel: seen.append(msg.content["n"])
    main = execute(t, "sleep:0.3")
    gevent.sleep(0.05)  # the cell is running
    ids = [request(t, "shell", "comm_msg", {"n": n}) for n in range(3)]
    gevent.sleep(0.05)
    assert seen == [0, 1, 2] and t.outbox["shell"].empty()  # handled, in order, cell still running
    assert t.receive("shell").parent_header["msg_id"] == main
    statuses = []
    while not t.outbox["iopub"].empty():
        m = t.receive("iopub")
        if m.msg_type == "status":
            statuses.append(m.parent_header["msg_id"])
    assert not set(ids) & set(statuses)
    # while idle, a comm message is an ordinary request again: busy/idle, in queue order
    idle_comm = request(t, "shell", "comm_msg", {"n": 3})
    assert [m.content["execution_state"] for m in iopub_for(t, idle_comm)] == ["busy", "idle"]


def test_shell_requests_on_control_run_ahead_of_the_shell_queue(kernel):
    k, t = kernel
    first = execute(t, "sleep:0.2")
    queued = [execute(t, "sleep:0.001"), execute(t, "sleep:0.002")]
    gevent.sleep(0.05)  # the first cell is running, two wait
    ahead = request(t, "control", "execute_request", {"code": "sleep:0"})
    assert t.receive("control").parent_header["msg_id"] == ahead  # before the queued ones ran
    assert [r.parent_header["msg_id"] for r in replies(t, "shell", 3)] == [first, *queued]
    assert k.interp.ran == ["sleep:0.2", "sleep:0", "sleep:0.001", "sleep:0.002"]
