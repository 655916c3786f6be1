"""Shared fixtures: a real geokernel process driven by jupyter_client over real ZMQ on
127.0.0.1, always shut down by a finalizer."""
from __future__ import annotations

import pytest
from jupyter_client.manager import KernelManager

KERNEL_NAME = "geokernel"


def start_kernel(env: dict | None = None, kernel_name: str = KERNEL_NAME, start_kw=None, **kw):
    """Start a kernel (geokernel unless named) on 127.0.0.1 and wait until it is ready; `env`
    adds variables to the kernel's environment, `start_kw` goes to start_kernel()."""
    import os

    km = KernelManager(kernel_name=kernel_name, ip="127.0.0.1", **kw)
    km.start_kernel(**{"env": {**os.environ, **(env or {})}, **(start_kw or {})})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except Exception:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop_kernel(km, kc):
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=False)
    km.cleanup_resources()


@pytest.fixture(scope="module")
def kernel():
    km, kc = start_kernel()
    yield km, kc
    stop_kernel(km, kc)


@pytest.fixture()
def fresh_kernel():
    km, kc = start_kernel()
    yield km, kc
    stop_kernel(km, kc)


def collect_iopub(kc, msg_id, timeout=30):
    """Every iopub message whose parent is msg_id, up to and including status idle."""
    msgs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


def shell_reply(kc, msg_id, timeout=30):
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def execute(kc, code, timeout=30, **kw):
    """Run code; return (execute_reply, iopub messages of that request)."""
    msg_id = kc.execute(code, **kw)
    reply = shell_reply(kc, msg_id, timeout)
    return reply, collect_iopub(kc, msg_id, timeout)


def outputs(msgs, msg_type):
    return [m["content"] for m in msgs if m["msg_type"] == msg_type]


def stdout_of(msgs, name="stdout"):
    return "".join(c["text"] for c in outputs(msgs, "stream") if c["name"] == name)
