"""`geokernel-pool`: a jupyter_client kernel provisioner whose kernels are forked by a warm
zygote (client.py) instead of started from scratch.

The kernelspec names it in `metadata.kernel_provisioner.provisioner_name`; jupyter_client
finds it through the `jupyter_client.kernel_provisioners` entry point. Everything before the
launch (ports, connection file, argv, environment) is LocalProvisioner's; the launch asks the
zygote for a fork, and the lifecycle works on a process that is not our child: a pidfd
(readable once the kernel exited; signals through it cannot reach a reused pid), the exit code
from the zygote, signals to the kernel's own process group as LocalProvisioner sends them.
"""
from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from .client import ZygoteError, zygote_for

UNKNOWN_EXIT = 1  # the return code when the zygote died before it could tell us
LISTEN_TIMEOUT = 5.0  # seconds launch_kernel waits for a forked kernel to listen


def _entry_args(cmd: list[str]) -> list[str]:
    """The kernel's own arguments from the kernelspec argv `python -m geokernel ARGS...`."""
    if len(cmd) >= 3 and cmd[1:3] == ["-m", "geokernel"]:
        return list(cmd[3:])
    raise ZygoteError("the geokernel-pool provisioner runs kernelspecs whose argv is "
                      f"[python, '-m', 'geokernel', ...]; got {cmd!r}")


def _stream_fd(stream, default: int, mode: int) -> tuple[int, bool]:
    """(fd, opened_here) for what Popen would accept as stdout/stderr."""
    if stream is None:
        return default, False
    if isinstance(stream, int) and stream >= 0:
        return stream, False
    if stream in (subprocess.DEVNULL, subprocess.PIPE):  # no pipe to give: discard
        return os.open(os.devnull, mode), True
    return stream.fileno(), False


class PoolProvisioner(LocalProvisioner):
    pidfd: int | None = None
    zygote = None
    returncode: int | None = None

    @property
    def has_process(self) -> bool:
        return self.pidfd is not None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        cmd = [os.path.expanduser(s) for s in cmd]
        args = _entry_args(cmd)
        env = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        # as jupyter_client's launcher: a kernel that is not `independent` watches this
        # process and ends with it (the zygote does not count: it is only the fork's parent)
        owner = None if kwargs.get("independent") else os.getpid()
        if owner is not None:
            env["JPY_PARENT_PID"] = str(owner)
        self.zygote = await asyncio.to_thread(zygote_for, cmd[0], env, cwd)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        opened = [ready_w]
        fds = []
        try:
            for stream, default, mode in ((subprocess.DEVNULL, 0, os.O_RDONLY),
                                          (kwargs.get("stdout"), 1, os.O_WRONLY),
                                          (kwargs.get("stderr"), 2, os.O_WRONLY)):
                fd, mine = _stream_fd(stream, default, mode)
                fds.append(fd)
                if mine:
                    opened.append(fd)
            fds.append(ready_w)
            pid, pidfd = await asyncio.to_thread(self.zygote.fork, args, env, cwd, fds, owner)
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            for fd in opened:
                os.close(fd)
        if self.pidfd is not None:  # a restart whose old kernel was never waited for
            os.close(self.pidfd)
        self.pid = self.pgid = pid  # the kernel called setsid(): it leads its own group
        self.pidfd = pidfd
        self.returncode = None
        self.cwd = cwd
        try:
            await self._until_listening(ready_r)
        finally:
            os.close(ready_r)
        return self.connection_info

    async def _until_listening(self, ready_fd: int) -> None:
        """Return once the forked kernel listens on its ports (it writes to `ready_fd` right
        after binding; EOF if it exited first), so a client that connects right away is not
        refused and left to libzmq's 100 ms reconnect interval. Gives up quietly after
        LISTEN_TIMEOUT (the client's own retries then apply)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_reader(ready_fd, lambda: done.done() or done.set_result(None))
        try:
            await asyncio.wait_for(done, LISTEN_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(ready_fd)

    def _exited(self) -> bool:
        if self.pidfd is None:
            return True
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return bool(readable)

    async def poll(self) -> int | None:
        if self.pidfd is None:
            return 0 if self.returncode is None else self.returncode
        if not self._exited():
            return None
        if self.returncode is None:
            code = None
            if self.zygote is not None:  # it reaps the kernel and sends the code at once
                code = await asyncio.to_thread(self.zygote.exit_code, self.pid, 2.0)
            self.returncode = UNKNOWN_EXIT if code is None else code
        return self.returncode

    async def wait(self) -> int | None:
        if self.pidfd is None:
            return self.returncode if self.returncode is not None else 0
        while await self.poll() is None:
            await asyncio.sleep(0.05)
        os.close(self.pidfd)
        self.pidfd = None  # has_process is False from now on
        return self.returncode

    async def send_signal(self, signum: int) -> None:
        if self.pidfd is None or self._exited():
            return
        if self.pgid:
            try:
                os.killpg(self.pgid, signum)  # the kernel and its subprocesses, as Local does
                return
            except OSError:
                pass
        signal.pidfd_send_signal(self.pidfd, signum)

    async def kill(self, restart: bool = False) -> None:
        try:
            await self.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def terminate(self, restart: bool = False) -> None:
        try:
            await self.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    async def cleanup(self, restart: bool = False) -> None:
        if self.pidfd is not None and self._exited():
            os.close(self.pidfd)
            self.pidfd = None
        await super().cleanup(restart=restart)

    async def get_provisioner_info(self) -> dict:
        info = await super().get_provisioner_info()
        info["zygote_pid"] = getattr(self.zygote, "pid", None)
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        try:  # a kernel started by an earlier owner: watch it without its exit code
            self.pidfd = os.pidfd_open(self.pid) if self.pid else None
        except OSError:
            self.pidfd = None
