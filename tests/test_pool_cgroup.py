"""Pooled kernels under a real memory limit: a memory cgroup of 512 MiB (made below this
process's own cgroup, removed afterwards) holds the zygote and every kernel it forks
(GEOKERNEL_POOL_CGROUP). Runs only where the system lets a test create a memory cgroup
(cgroup v2 with the memory controller delegated, or v1's memory hierarchy writable)."""
from __future__ import annotations

import os
import time
import uuid

import pytest
from jupyter_client.manager import KernelManager

from geokernel.pool import cgroup
from geokernel.pool import client as pool

from conftest import execute

ok, where = cgroup.available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no writable memory cgroup: {where}")

LIMIT = 512 * 1024 * 1024
KERNELS = 12  # what the PSS measurement says fits with room to spare (README "pooled kernels")


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture()
def group():
    g = cgroup.MemoryCgroup.create(f"geokernel-test-{uuid.uuid4().hex[:8]}", LIMIT)
    started = []
    try:
        yield g, started
    finally:
        for km, kc in started:
            kc.stop_channels()
            if km.is_alive():
                km.shutdown_kernel(now=True)
            km.cleanup_resources()
        pool.shutdown_all()
        deadline = time.monotonic() + 30
        while g.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = g.pids()
        g.remove()
        assert not left, f"processes outlived the test in {g.path}: {left}"


def _start(env):
    km = KernelManager(kernel_name="geokernel-pool", ip="127.0.0.1")
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def test_pooled_kernels_run_inside_a_512_mib_cgroup(group):
    g, started = group
    assert g.limit == LIMIT
    env = {**os.environ, cgroup.ENV: g.path}
    for _ in range(KERNELS):
        started.append(_start(env))
    zygote = [z for z in pool.zygotes() if z.alive()]
    members = set(g.pids())
    assert {km.provisioner.pid for km, _ in started} <= members  # born inside the group
    assert any(z.pid in members for z in zygote)
    for km, kc in started:  # every kernel works: an execute and a completion
        reply, _ = execute(kc, "x = sum(range(1000))")
        assert reply["content"]["status"] == "ok"
        assert "print" in kc.complete("pri", reply=True, timeout=30)["content"]["matches"]
    assert g.oom_kills() == 0
    assert all(km.is_alive() for km, _ in started)
    usage = g.usage()
    print(f"\n{KERNELS} pooled kernels + zygote: cgroup usage {usage / 2**20:.0f} MiB "
          f"(peak {(g.peak() or 0) / 2**20:.0f} MiB) of {LIMIT / 2**20:.0f} MiB")
    assert usage <= LIMIT


def test_the_kernel_that_overflows_the_limit_is_the_one_killed(group):
    g, started = group
    env = {**os.environ, cgroup.ENV: g.path}
    for _ in range(3):
        started.append(_start(env))
    (hog_km, hog), *others = started
    hog.execute("hog = bytearray(700 * 2**20)")  # more than the whole group may hold
    deadline = time.monotonic() + 60
    while hog_km.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not hog_km.is_alive(), "the kernel over the limit was not killed"
    assert g.oom_kills() >= 1
    assert hog_km.provisioner.returncode == -9  # the OOM killer's SIGKILL, via the zygote
    for km, kc in others:
        reply, _ = execute(kc, "'alive'")
        assert reply["content"]["status"] == "ok" and km.is_alive()
    assert all(z.alive() for z in pool.zygotes())


def test_any_kernel_can_be_born_in_the_group(group, tmp_path):
    """The kernelspec wrapper `python -m geokernel.pool.cgroup GROUP -- ARGV` (used by
    `geokernel bench --fill-mib` for ipykernel and plain geokernel)."""
    import json
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    g, started = group
    spec = tmp_path / "kernels" / "wrapped"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "geokernel.pool.cgroup", g.path, "--", sys.executable,
                 "-m", "geokernel", "-f", "{connection_file}"],
        "display_name": "wrapped", "language": "python"}))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    km = KernelManager(kernel_name="wrapped", ip="127.0.0.1", kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    started.append((km, kc))
    kc.wait_for_ready(timeout=60)
    reply, _ = execute(kc, "import os; os.getpid()")
    assert reply["content"]["status"] == "ok"
    assert km.provisioner.pid in g.pids()  # exec kept the pid: the kernel itself is inside
