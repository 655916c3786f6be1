"""Helpers for tests that run the same cells on geokernel and on ipykernel ("python3") and
compare what the client receives, including output that arrives after a cell's idle."""
from __future__ import annotations

import os
import queue
import time

import pytest
from jupyter_client.manager import KernelManager

KERNELS = ("geokernel", "python3")


def start(name: str, env: dict | None = None):
    km = KernelManager(kernel_name=name, ip="127.0.0.1")
    km.start_kernel(env={**os.environ, **(env or {})})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except Exception:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop(km, kc) -> None:
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=False)
    km.cleanup_resources()


def kernel_fixture(env: dict | None = None, kernels=KERNELS):
    """A module-scoped fixture parametrized over the kernels (both by default): yields (name, kc)."""

    @pytest.fixture(scope="module", params=kernels)
    def fixture(request):
        km, kc = start(request.param, env)
        yield request.param, kc
        stop(km, kc)

    return fixture


def run(kc, code: str, timeout: float = 30, **kw):
    """Run code; return (reply content, iopub messages of that request up to its idle)."""
    msg_id = kc.execute(code, **kw)
    deadline = time.monotonic() + timeout
    reply = None
    while reply is None:
        m = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if m["parent_header"].get("msg_id") == msg_id:
            reply = m
    msgs = []
    while True:
        m = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    return reply["content"], msgs


def gather(kc, seconds: float) -> list:
    """Every iopub message arriving within `seconds` (any parent)."""
    out, end = [], time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return out
        try:
            out.append(kc.get_iopub_msg(timeout=left))
        except queue.Empty:
            return out


def text_by_parent(msgs, name: str = "stdout") -> dict:
    """{parent msg_id: concatenated stream text}."""
    out: dict = {}
    for m in msgs:
        if m["msg_type"] == "stream" and m["content"]["name"] == name:
            pid = m["parent_header"].get("msg_id")
            out[pid] = out.get(pid, "") + m["content"]["text"]
    return out


def stream_text(msgs, name: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def drain(kc) -> None:
    gather(kc, 0.2)
