"""Writing and installing the `geokernel` kernelspec (plain functions, no jupyter_client).

`install` never deletes what it did not create: an existing folder is replaced only when it is
our own earlier install (see `is_own_kernelspec`) or when the caller passes `replace=True`, and
it never writes outside the kernels folder (names are checked as jupyter_client checks them)."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile

KERNEL_NAME = "geokernel"
DISPLAY_NAME = "Python 3 (geokernel)"
# the same kernel, forked by a warm zygote (geokernel/pool/): jupyter_client finds the
# provisioner named in metadata.kernel_provisioner through its entry point
POOL_KERNEL_NAME = "geokernel-pool"
POOL_DISPLAY_NAME = "Python 3 (geokernel, pooled)"
POOL_PROVISIONER = "geokernel-pool"
# what jupyter_client accepts (it lowercases first); "." and ".." would name the kernels folder
# itself or its parent
_NAME = re.compile(r"[a-z0-9._-]+")
# files an install of ours writes: a folder holding anything else is not only ours
_OWN_FILES = frozenset({"kernel.json"})


class InstallError(Exception):
    """The kernelspec was not installed (the message says why, in one line)."""


def check_name(name: str) -> str:
    """The kernelspec name as jupyter_client would store it (lowercased), or InstallError."""
    lowered = name.lower()
    if not _NAME.fullmatch(lowered) or lowered in (".", ".."):
        raise InstallError(
            f"invalid kernel name {name!r}: use ASCII letters, digits and - . _ "
            "(not '.' or '..')")
    return lowered


def kernel_dict(display_name: str = DISPLAY_NAME, executable: str | None = None,
                pooled: bool = False) -> dict:
    spec = {
        "argv": [executable or sys.executable, "-m", "geokernel", "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        # SIGINT reaches a cell even inside a blocking C call that checks signals
        "interrupt_mode": "signal",
        # JupyterLab shows its debugger; CurveZMQ for transport_encryption (jupyter_client 8.9+)
        "metadata": {"debugger": True, "supported_encryption": ["curve"]},
    }
    if pooled:
        spec["metadata"]["kernel_provisioner"] = {"provisioner_name": POOL_PROVISIONER}
    return spec


def user_data_dir() -> str:
    if os.environ.get("JUPYTER_DATA_DIR"):
        return os.environ["JUPYTER_DATA_DIR"]
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Jupyter")
    if os.name == "nt":
        return os.path.join(os.environ.get("APPDATA", os.path.expanduser("~")), "jupyter")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(xdg, "jupyter")


def kernels_dir(user: bool = False, sys_prefix: bool = False, prefix: str | None = None) -> str:
    if prefix:
        return os.path.join(prefix, "share", "jupyter", "kernels")
    if sys_prefix:
        return os.path.join(sys.prefix, "share", "jupyter", "kernels")
    if user:
        return os.path.join(user_data_dir(), "kernels")
    base = os.environ.get("PROGRAMDATA", "C:\\ProgramData") if os.name == "nt" else "/usr/local/share"
    return os.path.join(base, "jupyter", "kernels")


def is_own_kernelspec(path: str) -> bool:
    """An earlier geokernel install: a real folder holding only kernel.json, whose argv runs
    `-m geokernel` (what `install` and `pip install` write)."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    if not set(os.listdir(path)) <= _OWN_FILES:
        return False
    try:
        with open(os.path.join(path, "kernel.json"), encoding="utf-8") as f:
            argv = json.load(f).get("argv")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(argv, list) and argv[1:3] == ["-m", "geokernel"]


def install(user=False, sys_prefix=False, prefix=None, name=KERNEL_NAME,
            display_name=DISPLAY_NAME, replace=False, pooled=False) -> str:
    """Write the kernelspec `name` (pooled: the geokernel-pool variant); returns its folder."""
    name = check_name(name)
    parent = kernels_dir(user, sys_prefix, prefix)
    dest = os.path.join(parent, name)
    os.makedirs(parent, exist_ok=True)
    if os.path.dirname(os.path.realpath(dest)) != os.path.realpath(parent) and not os.path.islink(dest):
        raise InstallError(f"{dest} is not inside {parent}")
    if os.path.lexists(dest):
        if is_own_kernelspec(dest):
            pass  # ours: kernel.json is rewritten below, nothing else is there
        elif not replace:
            raise InstallError(f"{dest} exists and is not a geokernel kernelspec; "
                               "pass --replace to replace it")
        elif os.path.islink(dest) or not os.path.isdir(dest):
            os.unlink(dest)  # the link itself, never what it points to
        else:
            shutil.rmtree(dest)
    os.makedirs(dest, exist_ok=True)
    # write next to the target and rename: a reader never sees half a kernel.json
    fd, tmp = tempfile.mkstemp(prefix=".kernel.json.", dir=dest)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(kernel_dict(display_name, pooled=pooled), f, indent=1)
        os.replace(tmp, os.path.join(dest, "kernel.json"))
    except BaseException:
        os.unlink(tmp)
        raise
    return dest
