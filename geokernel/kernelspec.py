"""Writing and installing the `geokernel` kernelspec (plain functions, no jupyter_client)."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

KERNEL_NAME = "geokernel"
DISPLAY_NAME = "Python 3 (geokernel)"


def kernel_dict(display_name: str = DISPLAY_NAME, executable: str | None = None) -> dict:
    return {
        "argv": [executable or sys.executable, "-m", "geokernel", "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        # SIGINT reaches a cell even inside a blocking C call that checks signals
        "interrupt_mode": "signal",
        # JupyterLab shows its debugger; CurveZMQ for transport_encryption (jupyter_client 8.9+)
        "metadata": {"debugger": True, "supported_encryption": ["curve"]},
    }


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


def install(user=False, sys_prefix=False, prefix=None, name=KERNEL_NAME,
            display_name=DISPLAY_NAME) -> str:
    dest = os.path.join(kernels_dir(user, sys_prefix, prefix), name)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "kernel.json"), "w", encoding="utf-8") as f:
            json.dump(kernel_dict(display_name), f, indent=1)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(tmp, dest)
    return dest
