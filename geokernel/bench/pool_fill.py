"""`geokernel bench --pool N --fill-mib M`: how many kernels of each kind really run in a
memory cgroup of M MiB. Kernels are started one after another inside a fresh cgroup (made
below our own, removed after; needs a writable memory cgroup, see geokernel/pool/cgroup.py),
each runs a cell and a completion (a kernel someone used), until the group's OOM killer
ends one or a start fails; the answer is how many were running and answering then."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid

MAX_KERNELS = 80  # a stop for a kernel so small (or a limit so large) the loop never fills


def _wrapped_kernels_dir(names: list[str], group_path: str) -> str:
    """A kernels folder holding each kernelspec with its argv run through the cgroup joiner
    (the pooled one instead gets GEOKERNEL_POOL_CGROUP: its zygote joins and forks there)."""
    from jupyter_client.kernelspec import KernelSpecManager

    root = tempfile.mkdtemp(prefix="geokernel-fill-")
    ksm = KernelSpecManager()
    for name in names:
        spec = ksm.get_kernel_spec(name)
        d = spec.to_dict()
        if d.get("metadata", {}).get("kernel_provisioner", {}).get("provisioner_name") == \
                "geokernel-pool":
            d["env"] = {**d.get("env", {}), "GEOKERNEL_POOL_CGROUP": group_path}
        else:
            argv = [sys.executable if a == "python" else a for a in d["argv"]]
            d["argv"] = [sys.executable, "-m", "geokernel.pool.cgroup", group_path, "--"] + argv
        os.makedirs(os.path.join(root, "kernels", name))
        with open(os.path.join(root, "kernels", name, "kernel.json"), "w") as f:
            json.dump(d, f)
    return root


def fill(name: str, limit_mib: int, progress=lambda text: None, timeout: float = 60.0) -> dict:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    from ..pool import cgroup
    from ..pool import client as pool
    from .pool import _complete_ms, _execute, _stop_all, _wait_ready

    group = cgroup.MemoryCgroup.create(f"geokernel-fill-{uuid.uuid4().hex[:8]}",
                                       limit_mib * 2**20)
    root = _wrapped_kernels_dir([name], group.path)
    ksm = KernelSpecManager(kernel_dirs=[os.path.join(root, "kernels")])
    started, working, why = [], 0, f"stopped at {MAX_KERNELS} kernels"
    try:
        for _ in range(MAX_KERNELS):
            km = KernelManager(kernel_name=name, ip="127.0.0.1", kernel_spec_manager=ksm)
            try:
                km.start_kernel()
                kc = km.client()
                kc.start_channels()
                started.append((km, kc))
                _wait_ready(kc, timeout)
                _execute(kc, "import os", timeout)
                _complete_ms(kc, "pri", timeout)
            except Exception as e:
                why = f"kernel {len(started)} failed: {type(e).__name__}: {e}"
                break
            time.sleep(0.3)
            if group.oom_kills():
                why = f"OOM kill after starting kernel {len(started)}"
                break
        time.sleep(1.0)
        working = sum(1 for km, _ in started if km.is_alive())
        alive_and_answering = 0
        for km, kc in started:
            if km.is_alive():
                try:
                    _execute(kc, "1", 10)
                    alive_and_answering += 1
                except Exception:
                    pass
        return {"fit": alive_and_answering, "alive": working, "started": len(started),
                "oom_kills": group.oom_kills(), "peak_mib": (group.peak() or 0) / 2**20,
                "why": why, "cgroup": group.version}
    finally:
        _stop_all(started)
        pool.shutdown_all()
        deadline = time.monotonic() + 30
        while group.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in group.pids():  # (only processes this run started are in the group)
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.2)
        group.remove()
        shutil.rmtree(root, ignore_errors=True)
        progress(f"    {name}: filled a {limit_mib} MiB cgroup")
