"""The owner's side of a zygote: start it, ask it to fork kernels, learn how they ended.

One `Zygote` per environment (python executable + the environment variables that change what
an import does) and per owner process; `zygote_for` finds or starts it. Thread-safe: the
provisioner calls it from worker threads (a start blocks ~1-2 s while the zygote warms up)."""
from __future__ import annotations

import atexit
import logging
import os
import select
import subprocess
import threading
import time

from . import protocol

log = logging.getLogger("geokernel.pool")

START_TIMEOUT = 120.0  # seconds for a new zygote to import and warm up (a busy machine)
REPLY_TIMEOUT = 30.0   # seconds for a fork reply
# environment variables that change what the zygote's imports find or do; kernels whose
# environments differ in one of these get different zygotes
ENV_KEYS_PREFIXES = ("PYTHON", "VIRTUAL_ENV", "CONDA", "LD_", "GEOKERNEL_POOL_", "OPENBLAS_",
                     "OMP_", "MKL_", "MPLBACKEND", "JEDI_", "IPYTHONDIR", "PATH")
# per-kernel variables: never part of the zygote's own environment
PER_KERNEL_PREFIXES = ("JPY_", "KERNEL_")


class ZygoteError(RuntimeError):
    """The zygote could not be started or could not fork a kernel (the message says why)."""


class Zygote:
    def __init__(self, python: str, env: dict, cwd: str | None = None,
                 start_timeout: float = START_TIMEOUT):
        self.python = python
        self._lock = threading.Lock()
        self._exits: dict[int, int] = {}    # kernel pid -> return code (from the zygote)
        self._replies: dict[int, tuple] = {}
        self._next_id = 0
        self.closed = False
        mine, theirs = protocol.pair()
        zenv = {k: v for k, v in env.items() if not k.startswith(PER_KERNEL_PREFIXES)}
        try:
            self.process = subprocess.Popen(
                [python, "-m", "geokernel.pool", str(theirs.fileno())], env=zenv, cwd=cwd,
                stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()], start_new_session=True)
        except OSError as e:
            mine.close()
            raise ZygoteError(f"cannot start a zygote with {python}: {e}") from None
        finally:
            theirs.close()
        self._sock = mine
        self.pid = self.process.pid
        try:
            message = self._next_message(start_timeout, wanted=lambda m: m.get("op") in
                                         ("ready", "failed"))
        except ZygoteError as e:
            self.close()
            raise ZygoteError(f"zygote {self.pid} did not start: {e}") from None
        if message.get("op") != "ready":
            self.close()
            raise ZygoteError(f"zygote {self.pid} did not start: {message.get('error')}")
        self.warm = message.get("warm", {})
        log.info("zygote %d ready: %s", self.pid, self.warm)

    def alive(self) -> bool:
        return not self.closed and self.process.poll() is None

    def fork(self, argv: list[str], env: dict, cwd: str | None, fds: list[int],
             owner: int | None = None) -> tuple[int, int]:
        """A new kernel process: (pid, pidfd). fds = [stdin, stdout, stderr] and optionally a
        pipe's write end the kernel writes a byte to once it listens (none is closed here);
        owner: the process whose death ends the kernel (None: none, an independent kernel)."""
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            try:
                protocol.send(self._sock, {"op": "fork", "id": request_id, "argv": argv,
                                           "env": env, "cwd": cwd,
                                           "owner": owner},
                              fds)
            except OSError as e:
                self.closed = True
                raise ZygoteError(f"zygote {self.pid} is gone: {e}") from None
        message, got = self._wait_reply(request_id)
        if message.get("op") == "forked" and len(got) == 1:
            return message["pid"], got[0]
        for fd in got:
            os.close(fd)
        raise ZygoteError(f"zygote {self.pid} could not fork a kernel: {message.get('error')}")

    def exit_code(self, pid: int, timeout: float = 0.0) -> int | None:
        """The kernel's return code once the zygote has reaped it (None: not (yet) known)."""
        deadline = time.monotonic() + timeout
        while True:
            if pid in self._exits:
                return self._exits.pop(pid)
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                self._pump(0)
                return self._exits.pop(pid, None)
            self._pump(min(left, 0.05))

    def close(self, timeout: float = 5.0) -> None:
        """End the zygote (it exits on the EOF); its kernels are not affected."""
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    # -- reading the channel -------------------------------------------------------------
    def _wait_reply(self, request_id: int) -> tuple[dict, list[int]]:
        deadline = time.monotonic() + REPLY_TIMEOUT
        while request_id not in self._replies:
            if self.closed or time.monotonic() > deadline:
                raise ZygoteError(f"zygote {self.pid} did not answer a fork request")
            self._pump(0.05)
        return self._replies.pop(request_id)

    def _next_message(self, timeout: float, wanted) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ZygoteError(f"no answer within {timeout:.0f} s")
            if self.process.poll() is not None:
                raise ZygoteError(f"exited with code {self.process.returncode}")
            ready, _, _ = select.select([self._sock], [], [], min(left, 0.2))
            if ready:
                try:
                    message, fds = protocol.recv(self._sock)
                except (protocol.ChannelClosed, OSError) as e:
                    raise ZygoteError(str(e)) from None
                for fd in fds:
                    os.close(fd)
                if wanted(message):
                    return message

    def _pump(self, timeout: float) -> None:
        """Read what the zygote sent (exit codes, replies), waiting up to `timeout` seconds."""
        with self._lock:
            if self.closed:
                return
            while True:
                try:
                    ready, _, _ = select.select([self._sock], [], [], timeout)
                except (OSError, ValueError):
                    self.closed = True
                    return
                if not ready:
                    return
                timeout = 0
                try:
                    message, fds = protocol.recv(self._sock)
                except (protocol.ChannelClosed, OSError):
                    self.closed = True  # the zygote died: its kernels' codes are lost
                    return
                op = message.get("op")
                if op == "exit":
                    self._exits[message.get("pid")] = message.get("code")
                elif op in ("forked", "error"):
                    self._replies[message.get("id")] = (message, fds)
                    continue
                for fd in fds:
                    os.close(fd)


_zygotes: dict[tuple, Zygote] = {}
_registry_lock = threading.Lock()


def zygote_key(python: str, env: dict) -> tuple:
    return (os.path.realpath(python), os.getuid(),
            tuple(sorted((k, v) for k, v in env.items() if k.startswith(ENV_KEYS_PREFIXES))))


def zygote_for(python: str, env: dict, cwd: str | None = None) -> Zygote:
    """This process's zygote for (python, env): the running one, or a new one."""
    key = zygote_key(python, env)
    with _registry_lock:
        z = _zygotes.get(key)
        if z is not None and z.alive():
            return z
        if z is not None:
            z.close()
        z = _zygotes[key] = Zygote(python, env, cwd)
        return z


def prestart(python: str | None = None, env: dict | None = None) -> Zygote:
    """Start the zygote ahead of the first kernel (e.g. when a server starts)."""
    import sys

    return zygote_for(python or sys.executable, dict(os.environ if env is None else env))


def zygotes() -> list[Zygote]:
    with _registry_lock:
        return list(_zygotes.values())


def shutdown_all() -> None:
    """End every zygote this process started (their kernels keep running until shut down)."""
    with _registry_lock:
        for z in _zygotes.values():
            z.close()
        _zygotes.clear()


atexit.register(shutdown_all)
