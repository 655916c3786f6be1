"""`!cmd` (the shell's system()) on a pseudo-terminal, as ipykernel runs it (through IPython's
pexpect handler): the command sees a terminal on stdin, stdout and stderr (`tty` names it,
`ls` prints columns for an 80-column window, programs line-buffer their output), stderr is
merged into stdout, and what it prints keeps the terminal's "\\r\\n" line ends.

The master side is read cooperatively (gevent waits on the fd), so the heartbeat, control and
interrupts keep working while the command runs and its output reaches the cell as it comes.
An interrupt does what ipykernel does: type ^C on the terminal (its line discipline sends
SIGINT to the command's foreground process group and echoes "^C"), show what the command
prints for a short grace, then end whatever is left of its process group; the cell is not
failed and `_exit_code` gets the status. No gevent child watcher is used (libev would reap
every child, breaking os.system and subprocess in user code): the exit is polled.
"""
from __future__ import annotations

import codecs
import errno
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios

import gevent
import gevent.os

from .subprocesses import wait_cooperatively

# ipykernel's pty (pexpect's default window): 24 rows, 80 columns
WINDOW = (24, 80)
# after ^C, how long the command may keep printing before it is ended (pexpect's
# terminate_timeout in IPython's handler is 0.2 s)
INTERRUPT_GRACE = 0.2


def _shell() -> str:
    return os.environ.get("SHELL") or "/bin/sh"


def _take_terminal() -> None:
    # runs in the child after setsid(): make the pty (already on fd 0) its controlling
    # terminal, so ^C, /dev/tty and job-control signals work as in a terminal
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_window(fd: int, window) -> None:
    if hasattr(termios, "tcsetwinsize"):  # Python >= 3.11
        termios.tcsetwinsize(fd, window)
    else:  # the same ioctl by hand: struct winsize {rows, cols, xpixel, ypixel}
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", window[0], window[1], 0, 0))


def _start(cmd: str, window=WINDOW):
    master, slave = os.openpty()
    try:
        _set_window(slave, window)
        proc = subprocess.Popen([_shell(), "-c", cmd], stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True, preexec_fn=_take_terminal)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    gevent.os.make_nonblocking(master)
    return proc, master


def _read(master: int) -> bytes:
    """The next chunk from the command's terminal; b"" once no process has it open."""
    try:
        return gevent.os.nb_read(master, 65536)
    except OSError as e:
        if e.errno == errno.EIO:  # Linux: the last slave fd was closed
            return b""
        raise


def _pump(master: int, sink) -> None:
    while True:
        chunk = _read(master)
        if not chunk:
            return
        sink(chunk)


def _end_group(proc) -> None:
    """End what is left of the command's process group (hang-up first, as a closing terminal
    would, then SIGKILL), and reap the command."""
    for sig, grace in ((signal.SIGHUP, 0.1), (signal.SIGCONT, 0.0), (signal.SIGINT, 0.1),
                       (signal.SIGKILL, 1.0)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            break
        if grace:
            with gevent.Timeout(grace, False):
                wait_cooperatively(proc)
    with gevent.Timeout(1.0, False):
        wait_cooperatively(proc)


def _after_interrupt(proc, master: int, sink) -> None:
    """ipykernel's ^C: type it on the terminal, show what follows for a grace, then end it."""
    try:
        os.write(master, b"\x03\n")  # as ipykernel: sendline(chr(3))
    except OSError:
        pass
    try:
        with gevent.Timeout(INTERRUPT_GRACE, False):
            _pump(master, sink)
    except KeyboardInterrupt:
        pass  # an impatient second interrupt: end it now
    if proc.poll() is None:
        _end_group(proc)


def _status(returncode: int | None) -> int:
    # IPython's convention: the exit status, or minus the signal that ended the command
    # (sh reports a child killed by signal n as 128 + n)
    if returncode is None:
        return 0
    if returncode > 128:
        return -(returncode - 128)
    return returncode


def run_on_pty(cmd: str, out=None) -> int:
    """Run `cmd` on a new pty, writing its output to `out` (default: the cell's sys.stdout) as
    it comes; return its status as IPython's system() does."""
    __tracebackhide__ = True  # noqa: F841
    stream = out if out is not None else sys.stdout
    decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a chunk may split a character

    def sink(b: bytes) -> None:
        text = decoder.decode(b)
        if text:
            stream.write(text)

    proc, master = _start(cmd)
    try:
        try:
            _pump(master, sink)
            wait_cooperatively(proc)  # the terminal closed: the shell is exiting (or redirected its fds)
        except KeyboardInterrupt:
            _after_interrupt(proc, master, sink)
    except BaseException:  # shutdown or an error of ours: leave nothing running
        _end_group(proc)
        raise
    finally:
        tail = decoder.decode(b"", final=True)
        if tail:
            stream.write(tail)
        os.close(master)
    return _status(proc.returncode)
