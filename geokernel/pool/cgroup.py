"""Memory cgroups for a pool: run all kernels of a zygote under one memory limit.

A zygote started with GEOKERNEL_POOL_CGROUP=/path/to/a/memory/cgroup moves itself into that
cgroup before it imports anything (on cgroup v1, pages stay charged where they were first
touched), and every kernel it forks is born there: the limit covers the zygote and all its
kernels together, which is what their summed PSS measures. On cgroup v2 the limit is
`memory.max`, on v1 `memory.limit_in_bytes`; when the limit is reached the kernel's OOM killer
ends the biggest process in the group (the kernel that allocated the most), not the others.

`MemoryCgroup.create` makes such a group below this process's own memory cgroup (never
elsewhere: a nested group cannot escape the limits above it) when the system lets us write
there; `available()` says whether it does, and why not."""
from __future__ import annotations

import os

ENV = "GEOKERNEL_POOL_CGROUP"
_V2_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
_V1_ROOT = "/sys/fs/cgroup/memory"


class CgroupError(OSError):
    """No memory cgroup could be made or used (the message says why)."""


def _own_paths() -> dict:
    """{"v1": relative path of our memory cgroup, "v2": relative path in the unified tree}."""
    out = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                hid, controllers, path = line.rstrip("\n").split(":", 2)
                if hid == "0" and controllers == "":
                    out["v2"] = path
                elif "memory" in controllers.split(","):
                    out["v1"] = path
    except OSError:
        pass
    return out


def own_memory_cgroup() -> tuple[str, str]:
    """(version, absolute folder) of the memory cgroup this process is in, where the memory
    controller is usable; CgroupError otherwise."""
    paths = _own_paths()
    if "v1" in paths:
        folder = os.path.join(_V1_ROOT, paths["v1"].lstrip("/"))
        if os.path.exists(os.path.join(folder, "memory.limit_in_bytes")):
            return "v1", folder
    if "v2" in paths:
        for root in _V2_ROOTS:
            folder = os.path.join(root, paths["v2"].lstrip("/"))
            try:
                with open(os.path.join(folder, "cgroup.subtree_control")) as f:
                    if "memory" in f.read().split():
                        return "v2", folder
            except OSError:
                continue
    raise CgroupError("no memory cgroup controller usable by this process "
                      "(cgroup v2 without 'memory' in cgroup.subtree_control, and no v1 memory)")


def available() -> tuple[bool, str]:
    """(True, folder) if a child memory cgroup can be created here, else (False, why)."""
    try:
        version, folder = own_memory_cgroup()
    except CgroupError as e:
        return False, str(e)
    if not os.access(folder, os.W_OK):
        return False, f"{folder} ({version}) is not writable"
    return True, folder


class MemoryCgroup:
    def __init__(self, version: str, path: str):
        self.version, self.path = version, path

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> "MemoryCgroup":
        version, parent = own_memory_cgroup()
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
        except OSError as e:
            raise CgroupError(f"cannot create memory cgroup {path}: {e}") from None
        group = cls(version, path)
        try:
            group._write("memory.max" if version == "v2" else "memory.limit_in_bytes",
                         str(int(limit_bytes)))
            if version == "v2":
                group._write("memory.swap.max", "0", missing_ok=True)
            else:
                group._write("memory.memsw.limit_in_bytes", str(int(limit_bytes)),
                             missing_ok=True)  # no escape into swap either
        except OSError:
            group.remove()
            raise
        return group

    def _write(self, name: str, value: str, missing_ok: bool = False) -> None:
        try:
            with open(os.path.join(self.path, name), "w") as f:
                f.write(value)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def _read(self, name: str) -> str:
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    @property
    def limit(self) -> int:
        raw = self._read("memory.max" if self.version == "v2" else "memory.limit_in_bytes")
        return int(raw) if raw.strip() != "max" else -1

    def usage(self) -> int:
        return int(self._read("memory.current" if self.version == "v2" else
                              "memory.usage_in_bytes"))

    def peak(self) -> int | None:
        try:
            return int(self._read("memory.peak" if self.version == "v2" else
                                  "memory.max_usage_in_bytes"))
        except OSError:
            return None

    def oom_kills(self) -> int:
        text = self._read("memory.events" if self.version == "v2" else "memory.oom_control")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        return [int(p) for p in self._read("cgroup.procs").split()]

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def remove(self) -> None:
        """Remove the (empty) group; its processes must have ended first."""
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


def join(path: str) -> None:
    """Move this process into the cgroup folder `path` (what a zygote does at start)."""
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError as e:
        raise CgroupError(f"{ENV}={path}: cannot join: {e}") from None


def exec_in(path: str, argv: list[str]) -> None:
    """Join the cgroup `path`, then become `argv` (a kernelspec wrapper: the kernel is born
    inside the group, so all its memory is charged there)."""
    join(path)
    os.execvp(argv[0], argv)


if __name__ == "__main__":  # python -m geokernel.pool.cgroup CGROUP -- ARGV...
    import sys

    args = sys.argv[1:]
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: python -m geokernel.pool.cgroup CGROUP_FOLDER -- ARGV...\n")
        raise SystemExit(2)
    try:
        exec_in(args[0], args[2:])
    except OSError as e:
        sys.stderr.write(f"geokernel.pool.cgroup: {e}\n")
        raise SystemExit(1)
