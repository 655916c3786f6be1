"""The command line: `geokernel install` on a temporary prefix that holds other kernelspecs and
Jupyter settings (nothing of theirs may change), and one-line errors for bad options and
environment values."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from jupyter_client.kernelspec import KernelSpecManager


def run_cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "geokernel", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def snapshot(root) -> dict:
    """Every file and link under root with its content (what an install must not touch)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[rel] = ("file", f.read())
            else:
                found[rel] = ("dir", None)
    return found


@pytest.fixture()
def prefix(tmp_path):
    """PREFIX/share/jupyter with a foreign kernelspec, lab settings, and a file beside PREFIX."""
    jupyter = tmp_path / "prefix" / "share" / "jupyter"
    other = jupyter / "kernels" / "other"
    other.mkdir(parents=True)
    (other / "kernel.json").write_text(json.dumps(
        {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Other", "language": "python"}))
    (other / "logo-64x64.png").write_bytes(b"\x89PNG")
    settings = jupyter / "lab" / "settings"
    settings.mkdir(parents=True)
    (settings / "overrides.json").write_text('{"theme": "dark"}')
    (tmp_path / "evil").mkdir()
    (tmp_path / "outside.txt").write_text("keep me")
    return tmp_path


def kernels_of(prefix):
    return os.path.join(prefix, "prefix", "share", "jupyter", "kernels")


@pytest.mark.parametrize("name", ["", ".", "..", "../../evil", "../evil", "my kernel", "a/b",
                                  "é", "name\n", "/abs"])
def test_install_refuses_bad_names_and_touches_nothing(prefix, name):
    before = snapshot(prefix)
    r = run_cli("install", "--prefix", str(prefix / "prefix"), "--name", name)
    assert r.returncode != 0
    assert "invalid kernel name" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert snapshot(prefix) == before


def test_install_refuses_a_foreign_folder_without_replace(prefix):
    before = snapshot(prefix)
    r = run_cli("install", "--prefix", str(prefix / "prefix"), "--name", "other")
    assert r.returncode != 0
    assert "not a geokernel kernelspec" in r.stderr and "--replace" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(prefix) == before
    # --replace: the user asked for it; only that folder changes
    r = run_cli("install", "--prefix", str(prefix / "prefix"), "--name", "other", "--replace")
    assert r.returncode == 0, r.stderr
    after = snapshot(prefix)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {os.path.join("prefix", "share", "jupyter", "kernels", "other", f)
                       for f in ("kernel.json", "logo-64x64.png")}
    spec = KernelSpecManager(kernel_dirs=[kernels_of(prefix)], ensure_native_kernel=False).get_kernel_spec("other")
    assert spec.argv[1:3] == ["-m", "geokernel"]


def test_install_and_reinstall_our_own(prefix):
    before = snapshot(prefix)
    for display in ("First", "Second"):  # replacing our own earlier install needs no flag
        r = run_cli("install", "--prefix", str(prefix / "prefix"), "--display-name", display)
        assert r.returncode == 0, r.stderr
    specs = KernelSpecManager(kernel_dirs=[kernels_of(prefix)], ensure_native_kernel=False).get_all_specs()
    assert set(specs) == {"geokernel", "geokernel-pool", "other"}  # the pooled one comes along
    pool = specs["geokernel-pool"]["spec"]
    assert pool["metadata"]["kernel_provisioner"]["provisioner_name"] == "geokernel-pool"
    assert pool["display_name"] == "Second (pooled)" and pool["argv"][1:3] == ["-m", "geokernel"]
    spec = specs["geokernel"]["spec"]
    assert spec["display_name"] == "Second"
    assert spec["argv"] == [sys.executable, "-m", "geokernel", "-f", "{connection_file}"]
    assert os.listdir(os.path.join(kernels_of(prefix), "geokernel")) == ["kernel.json"]
    after = snapshot(prefix)
    assert {k: v for k, v in after.items() if "geokernel" not in k} == before
    # a file the user added to our folder makes it no longer only ours: refused, kept
    (prefix / "prefix" / "share" / "jupyter" / "kernels" / "geokernel" / "notes.txt").write_text("x")
    r = run_cli("install", "--prefix", str(prefix / "prefix"))
    assert r.returncode != 0 and "--replace" in r.stderr
    assert (prefix / "prefix" / "share" / "jupyter" / "kernels" / "geokernel" / "notes.txt").exists()


def test_install_lowercases_like_jupyter_client(prefix):
    r = run_cli("install", "--prefix", str(prefix / "prefix"), "--name", "Geo.Kernel-2_x")
    assert r.returncode == 0, r.stderr
    assert "geo.kernel-2_x" in KernelSpecManager(kernel_dirs=[kernels_of(prefix)], ensure_native_kernel=False).find_kernel_specs()


def test_install_never_follows_a_link_out(prefix):
    link = prefix / "prefix" / "share" / "jupyter" / "kernels" / "linked"
    os.symlink(prefix / "evil", link)
    before = snapshot(prefix)
    r = run_cli("install", "--prefix", str(prefix / "prefix"), "--name", "linked")
    assert r.returncode != 0 and "--replace" in r.stderr
    assert snapshot(prefix) == before
    r = run_cli("install", "--prefix", str(prefix / "prefix"), "--name", "linked", "--replace")
    assert r.returncode == 0, r.stderr
    assert not os.path.islink(link) and (link / "kernel.json").is_file()
    assert os.listdir(prefix / "evil") == []  # the link's target was not written to


def test_help_lists_subcommands_and_version():
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("install", "bench", "--profile-dir", "--connection-file"):
        assert word in r.stdout
    r = run_cli("--version")
    assert r.returncode == 0
    from geokernel import __version__

    assert r.stdout.strip() == f"geokernel {__version__}"


@pytest.mark.parametrize("args,env,words", [
    (["-f", "x.json", "--log-level", "nonsense"], {}, "--log-level"),
    (["-f", "x.json"], {"GEOKERNEL_TRANSPORT": "bogus"}, "GEOKERNEL_TRANSPORT"),
    (["-f", "x.json"], {"GEOKERNEL_TICK_MS": "x"}, "GEOKERNEL_TICK_MS"),
    (["-f", "x.json"], {"GEOKERNEL_TICK_MS": "-5"}, "GEOKERNEL_TICK_MS"),
    (["-f", "x.json"], {"GEOKERNEL_LOG_LEVEL": "loud"}, "GEOKERNEL_LOG_LEVEL"),
    (["-f", "x.json", "--no-such-option"], {}, "--no-such-option"),
    (["-f", "x.json", "--profile-dir", "/nonexistent/profile"], {}, "--profile-dir"),
    (["-f", "x.json", "--profile", "nosuchprofile"], {}, "nosuchprofile"),
    (["-f", "/nonexistent/connection.json"], {}, "connection"),
    ([], {}, "-f"),
])
def test_bad_values_are_one_line_errors(args, env, words):
    r = run_cli(*args, env=env)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "error" in lines[0] and words in lines[0] and "Traceback" not in r.stderr
