"""usage_reply content (jupyter-resource-usage's panel, ipykernel's fields): CPU and memory of
the kernel and the processes it started."""
from __future__ import annotations

import os
import socket


def usage_content(known: dict) -> dict:
    """`known`: pid -> psutil.Process kept across requests by the caller: cpu_percent measures
    since the previous call on the same object (a new object always says 0)."""
    import psutil  # lazy: only the resource-usage panel asks

    me = known.get(os.getpid()) or psutil.Process()
    try:
        procs = [me, *me.children(recursive=True)]
    except psutil.Error:
        procs = [me]
    current = {}
    for p in procs:
        old = known.get(p.pid)
        current[p.pid] = old if old is not None and old == p else p  # == : same start time
    known.clear()
    known.update(current)
    cpu = mem = 0.0
    for p in current.values():
        try:
            cpu += p.cpu_percent(interval=None)
            full = p.memory_full_info()
            mem += getattr(full, "pss", full.rss)
        except psutil.Error:
            pass
    content = {"status": "ok", "hostname": socket.gethostname(), "pid": os.getpid(),
               "kernel_cpu": cpu, "kernel_memory": mem, "cpu_count": psutil.cpu_count(logical=True),
               "host_virtual_memory": dict(psutil.virtual_memory()._asdict())}
    host_cpu = psutil.cpu_percent(interval=None)
    if host_cpu:
        content["host_cpu_percent"] = host_cpu
    return content
