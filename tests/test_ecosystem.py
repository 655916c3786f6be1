"""Libraries that detect a notebook frontend find one, as on ipykernel."""
from __future__ import annotations

from compare_kernels import kernel_fixture, run, stream_text

kernel = kernel_fixture()


def test_shell_name_and_config_section(kernel):
    name, kc = kernel
    _, msgs = run(kc, "ip = get_ipython()\nprint(ip.__class__.__name__, 'IPKernelApp' in ip.config)")
    assert stream_text(msgs) == "ZMQInteractiveShell True\n", name


def test_rich_detects_jupyter(kernel):
    name, kc = kernel
    reply, msgs = run(kc, "import rich.console\nprint(rich.console.Console().is_jupyter)")
    assert reply["status"] == "ok", reply
    assert stream_text(msgs) == "True\n", name


def test_gui_names_accepted(kernel):
    name, kc = kernel
    for gui in ("asyncio", "widget", "notebook"):
        reply, _ = run(kc, f"get_ipython().enable_gui({gui!r})")
        assert reply["status"] == "ok", (name, gui, reply)
