"""Nothing a peer sends can kill a channel: pathological but correctly signed messages on
shell, control and stdin, then every channel (shell, control, stdin, iopub, heartbeat) must
still work. Both transports, real kernel processes, real sockets on 127.0.0.1."""
from __future__ import annotations

import json
import time

import pytest
import zmq

from conftest import execute, shell_reply, start_kernel, stop_kernel, stdout_of


@pytest.fixture(scope="module", params=["zmtp", "zmq"])
def any_kernel(request):
    km, kc = start_kernel(env={"GEOKERNEL_TRANSPORT": request.param})
    yield km, kc
    stop_kernel(km, kc)


def url(km, channel: str) -> str:
    return f"tcp://127.0.0.1:{getattr(km, channel + '_port')}"


def signed_frames(kc, header: bytes, parent: bytes = b"{}", metadata: bytes = b"{}",
                  content: bytes = b"{}") -> list:
    parts = [header, parent, metadata, content]
    return [b"<IDS|MSG>", kc.session.sign(parts)] + parts


def nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


def header(kc, msg_type: str, extra: bytes = b"") -> bytes:
    h = kc.session.msg_header(msg_type)
    h["date"] = h["date"].isoformat()
    raw = json.dumps(h).encode()
    return raw[:-1] + b"," + extra + b"}" if extra else raw


def pathological(kc, msg_type: str) -> list:
    """Correctly signed messages that decode badly or not at all."""
    out = []
    for depth in (900, 990, 1000, 5000, 100_000):
        out.append(signed_frames(kc, header(kc, msg_type), content=nested(depth)))
        out.append(signed_frames(kc, header(kc, msg_type), parent=nested(depth)))
        out.append(signed_frames(kc, header(kc, msg_type), metadata=nested(depth)))
        # parses at small depths, so the kernel must also survive echoing it in a reply
        out.append(signed_frames(kc, header(kc, msg_type, b'"x":' + nested(depth))))
    out.append(signed_frames(kc, b"[]"))
    out.append(signed_frames(kc, header(kc, msg_type), content=b"\xff\xfe"))
    out.append(signed_frames(kc, header(kc, msg_type), content=b"1e999999"))
    out.append(signed_frames(kc, header(kc, msg_type), content=b'{"code": ' + b'"' + b"\\ud800" * 1000 + b'"}'))
    return out


def send_raw(km, channel: str, messages: list, identity: bytes = b"hostile") -> None:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 2000
    s.identity = identity
    s.connect(url(km, channel))
    for frames in messages:
        s.send_multipart(frames)
    time.sleep(0.5)
    s.close()


def heartbeat_ok(km, timeout: float = 10.0) -> bool:
    s = zmq.Context.instance().socket(zmq.REQ)
    s.linger = 0
    s.connect(url(km, "hb"))
    try:
        s.send(b"ping")
        if not s.poll(int(timeout * 1000)):
            return False
        return s.recv() == b"ping"
    finally:
        s.close()


def new_subscriber_welcomed(km, timeout: float = 10.0) -> bool:
    """A fresh iopub subscriber receives its iopub_welcome (JEP 65)."""
    s = zmq.Context.instance().socket(zmq.SUB)
    s.linger = 0
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(url(km, "iopub"))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if s.poll(200):
                frames = s.recv_multipart()
                i = frames.index(b"<IDS|MSG>")
                if json.loads(frames[i + 2])["msg_type"] == "iopub_welcome":
                    return True
        return False
    finally:
        s.close()


def assert_all_channels_work(km, kc) -> None:
    assert heartbeat_ok(km), "heartbeat"
    reply, msgs = execute(kc, "print(6 * 7)")
    assert reply["content"]["status"] == "ok", "shell"
    assert stdout_of(msgs) == "42\n", "iopub"
    msg = kc.session.msg("kernel_info_request")
    kc.control_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    while True:
        r = kc.get_control_msg(timeout=10)
        if r["parent_header"].get("msg_id") == msg_id:
            break
    assert r["content"]["status"] == "ok", "control"
    msg_id = kc.execute("x = input('q? '); print('got', x)", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=10)
    assert req["content"]["prompt"] == "q? "
    kc.input("yes")
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok", "stdin"
    assert new_subscriber_welcomed(km), "new iopub subscriber"


@pytest.mark.parametrize("channel", ["shell", "control", "stdin"])
def test_pathological_messages_do_not_kill_channels(any_kernel, channel):
    km, kc = any_kernel
    msg_type = {"shell": "execute_request", "control": "kernel_info_request",
                "stdin": "input_reply"}[channel]
    send_raw(km, channel, pathological(kc, msg_type))
    assert km.is_alive()
    assert_all_channels_work(km, kc)


def test_unicode_and_deep_content_still_answered(any_kernel):
    """A valid execute_request that is merely odd still gets its reply."""
    km, kc = any_kernel
    reply, msgs = execute(kc, "print('\\u00e9' * 3)")
    assert stdout_of(msgs) == "\u00e9\u00e9\u00e9\n"
    assert_all_channels_work(km, kc)
