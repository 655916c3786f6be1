"""The IPython kernel-app options and profile, as IPKernelApp loads them: a real kernel started
by jupyter_client with `--profile-dir` pointing at a temporary profile (config files, a startup
file, exec_lines, an extension) plus command-line config; `''` on sys.path as on ipykernel."""
from __future__ import annotations

import json
import os
import textwrap

import pytest
from jupyter_client.manager import KernelManager

from conftest import execute, outputs, stdout_of, stop_kernel


def start(kernel_name, extra_arguments=(), cwd=None, env=None):
    km = KernelManager(kernel_name=kernel_name, ip="127.0.0.1")
    km.start_kernel(extra_arguments=list(extra_arguments), cwd=cwd,
                    env={**os.environ, **(env or {})})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except Exception:
        stop_kernel(km, kc)
        raise
    return km, kc


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    prof = root / "profile_test"
    (prof / "startup").mkdir(parents=True)
    (prof / "startup" / "00-first.py").write_text(
        "startup_value = 'from startup'\nstartup_order = ['00']\nprint('startup printed')\n")
    (prof / "startup" / "10-second.ipy").write_text("startup_order.append('10')\n%load_ext geokernel_test_ext2\n")
    (prof / "ipython_config.py").write_text(textwrap.dedent("""
        c.InteractiveShellApp.exec_lines = ['from_base_config = 1']
        c.InteractiveShellApp.extensions = ['geokernel_test_ext']
        c.InlineBackend.figure_formats = {'svg'}
    """))
    # the kernel config file overrides the base one, as IPKernelApp's own section does
    (prof / "ipython_kernel_config.json").write_text(json.dumps(
        {"IPKernelApp": {"exec_lines": ["from_kernel_config = 2", "exec_order = 'lines'"],
                         "exec_files": [str(root / "exec_me.py")]}}))
    (root / "exec_me.py").write_text("exec_file_ran = exec_order + '+file'\n")
    ext = root / "ext"
    ext.mkdir()
    (ext / "geokernel_test_ext.py").write_text(
        "def load_ipython_extension(ip):\n    ip.user_ns['ext_loaded'] = ip.__class__.__name__\n")
    (ext / "geokernel_test_ext3.py").write_text(
        "def load_ipython_extension(ip):\n    ip.user_ns['ext3_loaded'] = True\n")
    (ext / "geokernel_test_ext2.py").write_text(
        "def load_ipython_extension(ip):\n    ip.user_ns['ext2_loaded'] = True\n")
    return prof, ext


@pytest.fixture(scope="module")
def profiled(profile):
    prof, ext = profile
    km, kc = start("geokernel", [
        "--profile-dir", str(prof),
        "--InteractiveShell.ast_node_interactivity=all",
        "--HistoryManager.hist_file=:memory:",  # what nbclient passes to Python kernels
        "--matplotlib=inline",
        "-c", "cli_code = startup_value + '!'",  # IPKernelApp's code_to_run, after exec_lines
        "--ext", "geokernel_test_ext3",
    ], env={"PYTHONPATH": str(ext)})
    yield km, kc
    stop_kernel(km, kc)


def value(kc, expr):
    reply, msgs = execute(kc, f"print(repr({expr}))")
    assert reply["content"]["status"] == "ok", reply["content"]
    return stdout_of(msgs).strip()


def test_startup_output_is_not_in_the_first_cell(profiled):
    _, kc = profiled
    reply, msgs = execute(kc, "print('cell')")
    assert stdout_of(msgs) == "cell\n"


def test_default_kernel_imports_no_matplotlib(kernel):
    """Loading the (default) profile must not import matplotlib when nothing asks for it."""
    _, kc = kernel
    assert value(kc, "'matplotlib' in __import__('sys').modules") == "False"


def test_profile_folder_and_config_files(profiled, profile):
    _, kc = profiled
    assert value(kc, "get_ipython().profile_dir.location") == repr(str(profile[0]))
    assert value(kc, "get_ipython().profile") == repr("test")
    assert value(kc, "startup_value") == repr("from startup")
    assert value(kc, "startup_order") == repr(["00", "10"])  # sorted, .py and .ipy
    # IPKernelApp.exec_lines (kernel config) replaced InteractiveShellApp's (base config)
    assert value(kc, "from_kernel_config") == "2"
    assert value(kc, "'from_base_config' in globals()") == "False"
    assert value(kc, "exec_file_ran") == repr("lines+file")  # exec_files run after exec_lines


def test_extensions_load_with_storemagic(profiled):
    _, kc = profiled
    assert value(kc, "ext_loaded") == repr("ZMQInteractiveShell")  # the name notebook-detecting libraries look for
    assert value(kc, "ext2_loaded") == "True"
    assert value(kc, "ext3_loaded") == "True"  # --ext
    assert value(kc, "'store' in get_ipython().magics_manager.magics['line']") == "True"
    reply, _ = execute(kc, "stored_x = 5\n%store stored_x")
    assert reply["content"]["status"] == "ok"


def test_command_line_config(profiled):
    _, kc = profiled
    assert value(kc, "get_ipython().history_manager.hist_file") == repr(":memory:")
    reply, msgs = execute(kc, "10\n20\n30")  # ast_node_interactivity='all'
    results = [c["data"]["text/plain"] for c in outputs(msgs, "execute_result")]
    assert results == ["10", "20", "30"]


def test_matplotlib_option_and_inline_backend_config(profiled):
    _, kc = profiled
    assert value(kc, "__import__('matplotlib').get_backend()") in (
        repr("inline"), repr("module://matplotlib_inline.backend_inline"))
    assert value(kc, "__import__('matplotlib_inline.config').config.InlineBackend.instance()"
                     ".figure_formats") == repr({"svg"})
    reply, msgs = execute(kc, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert reply["content"]["status"] == "ok"
    figures = [c["data"] for c in outputs(msgs, "display_data") if "image/svg+xml" in c["data"]]
    assert len(figures) == 1 and "image/png" not in figures[0]


def test_startup_names_are_hidden_from_who(profiled):
    _, kc = profiled
    reply, msgs = execute(kc, "visible_name = 1\n%who")
    shown = stdout_of(msgs).split()
    assert "visible_name" in shown and "startup_value" not in shown
    # code_to_run (-c) runs after the start-up names are hidden, as in IPython
    assert "cli_code" in shown
    assert value(kc, "cli_code") == repr("from startup!")


def test_named_profile_in_ipython_dir(tmp_path):
    prof = tmp_path / "profile_named"
    (prof / "startup").mkdir(parents=True)
    (prof / "startup" / "a.py").write_text("named_profile = True\n")
    km, kc = start("geokernel", ["--profile", "named"], env={"IPYTHONDIR": str(tmp_path)})
    try:
        assert value(kc, "named_profile") == "True"
        assert value(kc, "get_ipython().profile") == repr("named")
    finally:
        stop_kernel(km, kc)


SYS_PATH = ("import sys, os; print(repr((sys.path.index(''), sys.path,"
            " os.getcwd() in sys.path, __import__('shadowed_here').where)))")


@pytest.mark.parametrize("extra", [[], ["--HistoryManager.hist_file=:memory:"]])
def test_cwd_on_sys_path_as_on_ipykernel(tmp_path, extra):
    """'' sits where IPKernelApp puts it (before site-packages), a module in the kernel's
    folder imports, and the folder itself is not on sys.path: the same list on both kernels
    (both run this Python; the fast '-f FILE' path and the parsed path both checked)."""
    (tmp_path / "shadowed_here.py").write_text("where = 'cwd'\n")
    seen = {}
    for name in ("geokernel", "python3"):
        km, kc = start(name, extra if name == "geokernel" else [], cwd=str(tmp_path))
        try:
            reply, msgs = execute(kc, SYS_PATH)
            assert reply["content"]["status"] == "ok", reply["content"]
            seen[name] = stdout_of(msgs)
        finally:
            stop_kernel(km, kc)
    assert seen["geokernel"] == seen["python3"]
    assert "'cwd'" in seen["geokernel"] and ", False, " in seen["geokernel"]
