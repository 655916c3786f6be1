"""The zygote: a warm, single-threaded process that forks one kernel per request.

Started by the provisioner as `python -m geokernel.pool CONTROL_FD` (fd = its end of a
SOCK_SEQPACKET pair, see protocol.py). It warms up (warm.py), freezes what it loaded
(`gc.freeze()`: the collector then never writes to those objects' headers, so their pages stay
shared with every kernel), says "ready", then sleeps in poll() on three things only:
- the control channel: fork requests; EOF = the owner closed it or died -> exit;
- a pidfd of its owner (the provisioner's process): readable once the owner exited -> exit;
- the SIGCHLD wake-up pipe: reap ended kernels, send their exit codes to the owner (the
  zygote is their parent, so only it can learn the codes; the owner gets a pidfd of each
  kernel for poll/kill).
Kernels do not die with the zygote (each watches the owner itself), so a crashed zygote costs
only the next start, which starts a new one.
"""
from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys

from . import protocol

_children: set[int] = set()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        sys.stderr.write("usage: python -m geokernel.pool CONTROL_FD (started by the "
                         "geokernel-pool provisioner)\n")
        raise SystemExit(2)
    control = socket.socket(fileno=int(argv[0]))
    owner = os.getppid()
    if os.environ.get("GEOKERNEL_POOL_CGROUP"):  # before any import: v1 charges stay put
        from .cgroup import CgroupError, join

        try:
            join(os.environ["GEOKERNEL_POOL_CGROUP"])
        except CgroupError as e:
            protocol.send(control, {"op": "failed", "error": str(e)})
            raise SystemExit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at the server's terminal: not ours
    # what process_setup gives a kernel, before matplotlib (if preloaded) reads it
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    from . import warm

    modules = warm.DEFAULT_PRELOAD + tuple(
        m for m in os.environ.get("GEOKERNEL_POOL_PRELOAD", "").split(",") if m)
    try:
        report = warm.warm_all(modules)
    except warm.ThreadStarted as e:
        protocol.send(control, {"op": "failed", "error": str(e)})
        raise SystemExit(1)
    gc.freeze()  # everything loaded so far lives in the permanent generation
    try:
        owner_fd = os.pidfd_open(owner)
    except (AttributeError, OSError):
        owner_fd = None  # Linux < 5.3: the control channel's EOF is the only signal
    if os.getppid() != owner:
        raise SystemExit(0)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a Python handler: the wake-up fd fires
    protocol.send(control, {"op": "ready", "pid": os.getpid(), "warm": report})
    _serve(control, owner, owner_fd, wake_r, wake_w)


def _serve(control, owner, owner_fd, wake_r, wake_w) -> None:
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    if owner_fd is not None:
        poller.register(owner_fd, select.POLLIN)
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, mask in events:
            if fd == wake_r:
                _drain(wake_r)
                _reap(control)
            elif fd == owner_fd:
                raise SystemExit(0)  # the owner exited: so do we
            elif fd == control.fileno():
                if mask & (select.POLLHUP | select.POLLERR) and not mask & select.POLLIN:
                    raise SystemExit(0)
                try:
                    message, fds = protocol.recv(control)
                except (protocol.ChannelClosed, OSError):
                    raise SystemExit(0)
                _handle(control, message, fds, (owner_fd, wake_r, wake_w))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _reap(control) -> None:
    while _children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            _children.clear()
            return
        if pid == 0:
            return
        _children.discard(pid)
        try:
            protocol.send(control, {"op": "exit", "pid": pid,
                                    "code": os.waitstatus_to_exitcode(status)})
        except OSError:
            raise SystemExit(0)


def _handle(control, message: dict, fds: list[int], private: tuple) -> None:
    request_id = message.get("id")
    try:
        if message.get("op") != "fork":
            raise ValueError(f"unknown request {message.get('op')!r}")
        argv, env, cwd = message.get("argv"), message.get("env"), message.get("cwd")
        owner = message.get("owner")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise ValueError("argv: a list of strings")
        if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in env.items())):
            raise ValueError("env: an object of strings")
        if cwd is not None and not (isinstance(cwd, str) and os.path.isdir(cwd)):
            raise ValueError(f"cwd {cwd!r} is not a folder")
        if len(fds) not in (3, 4):
            raise ValueError("a fork request carries stdin, stdout, stderr (and a ready pipe)")
        from .warm import os_threads

        if os_threads() != 1:  # never fork a threaded process (locks held by other threads)
            raise RuntimeError(f"the zygote has {os_threads()} OS threads: refusing to fork")
        pid = _fork(control, argv, env, cwd, owner, fds, private)
        try:
            pidfd = os.pidfd_open(pid)  # before any reaping: the pid cannot be reused yet
        except (AttributeError, OSError) as e:  # Linux < 5.3: no way to hand the kernel over
            os.kill(pid, signal.SIGKILL)
            raise RuntimeError(f"pidfd_open: {e} (geokernel-pool needs Linux >= 5.3)") from None
        try:
            protocol.send(control, {"op": "forked", "id": request_id, "pid": pid}, [pidfd])
        finally:
            os.close(pidfd)
    except Exception as e:
        try:
            protocol.send(control, {"op": "error", "id": request_id,
                                    "error": f"{type(e).__name__}: {e}"})
        except OSError:
            raise SystemExit(0)
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _fork(control, argv, env, cwd, owner, fds, private) -> int:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered may be written twice
    pid = os.fork()
    if pid:
        _children.add(pid)
        return pid
    code = 1
    try:
        ready = fds[3] if len(fds) > 3 else None
        _become_kernel(control, env, cwd, fds[:3], private)
        code = _run(argv, owner, ready)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _become_kernel(control, env, cwd, fds, private) -> None:
    """In the child: the process a kernelspec launch would have given it."""
    signal.set_wakeup_fd(-1)
    for sig, handler in ((signal.SIGCHLD, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler),
                         (signal.SIGTERM, signal.SIG_DFL)):
        signal.signal(sig, handler)
    control.close()
    for fd in private:
        if fd is not None:
            os.close(fd)
    os.setsid()  # its own session and process group, as jupyter_client gives a kernel
    _prefer_kernels_for_oom()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)  # dup2 clears close-on-exec: inherited by its subprocesses
        os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    if cwd:
        os.chdir(cwd)
    import random

    random.seed()  # (Python reseeds after os.fork too; explicit, for the record)
    _fresh_hub()


OOM_SCORE_RAISE = 100  # how much likelier than its zygote a kernel is to be the OOM victim


def _prefer_kernels_for_oom() -> None:
    # the zygote's RSS is the largest in its pool (all warm pages), but it holds no user
    # work and losing it loses the sharing for every later kernel: under a memory limit the
    # kernel that allocates is the one to end (raising one's own score needs no privilege)
    try:
        with open("/proc/self/oom_score_adj", "r+") as f:
            score = int(f.read())
            f.seek(0)
            f.write(str(min(1000, score + OOM_SCORE_RAISE)))
    except (OSError, ValueError):
        pass


def _fresh_hub() -> None:
    # the zygote never runs a hub; if an import made one, its libev loop (an epoll fd shared
    # with the zygote) must not be used by the child
    from gevent._hub_local import get_hub_if_exists

    hub = get_hub_if_exists()
    if hub is not None:
        hub.loop.reinit()


def _run(argv: list[str], owner, ready: int | None) -> int:
    from geokernel import cli

    # what `python -m geokernel` would have in sys.argv[0]
    sys.argv = [os.path.join(os.path.dirname(cli.__file__), "__main__.py")] + argv
    # jedi is warm already (warm.py); warming it again would copy its shared pages
    if ready is not None:
        os.set_inheritable(ready, False)  # not for the kernel's subprocesses

    def listening() -> None:
        if ready is not None:
            try:
                os.write(ready, b"1")
            finally:
                os.close(ready)

    cli.main(argv, parent_pid=owner if isinstance(owner, int) else None, warm_completer=False,
             on_listening=listening)
    return 0

