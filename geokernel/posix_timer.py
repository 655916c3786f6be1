"""A per-process POSIX timer (timer_create) that delivers a real-time signal, through ctypes.

The execution tick uses these instead of setitimer(ITIMER_REAL)/SIGALRM, so the user's
`signal.alarm`, `setitimer` and SIGALRM handlers stay theirs, exactly as in plain Python.
Linux only (glibc: timer_* live in libc since 2.34, in librt before).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

_CLOCK_MONOTONIC = 1
_SIGEV_SIGNAL = 0


class _SigEvent(ctypes.Structure):
    # struct sigevent on Linux: sigval, signo, notify, then a 48-byte union (64 bytes in all)
    _fields_ = [("sigev_value", ctypes.c_void_p), ("sigev_signo", ctypes.c_int),
                ("sigev_notify", ctypes.c_int), ("_pad", ctypes.c_int * 12)]


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _ITimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


def _library():
    for name in (None, ctypes.util.find_library("rt")):
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            lib.timer_create  # noqa: B018 (raises AttributeError when absent)
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _timespec(seconds: float) -> _TimeSpec:
    whole = int(seconds)
    return _TimeSpec(whole, int(round((seconds - whole) * 1e9)))


class PosixTimer:
    """One timer firing `signo` (a real-time signal the kernel reserves). arm(first, every)
    starts it (every=0: one shot), disarm() stops it; each is one timer_settime call."""

    def __init__(self, signo: int):
        lib = _library()
        if lib is None:
            raise OSError("timer_create is not available")
        self.signo = signo
        self._settime = lib.timer_settime
        self._settime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_ITimerSpec),
                                  ctypes.c_void_p]
        self._delete = lib.timer_delete
        self._delete.argtypes = [ctypes.c_void_p]
        create = lib.timer_create
        create.argtypes = [ctypes.c_int, ctypes.POINTER(_SigEvent), ctypes.POINTER(ctypes.c_void_p)]
        event = _SigEvent(sigev_signo=signo, sigev_notify=_SIGEV_SIGNAL)
        self._id = ctypes.c_void_p()
        if create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(self._id)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timer_create: {os.strerror(err)}")
        self._spec = _ITimerSpec()  # reused: arm/disarm run on every cell and every tick

    @staticmethod
    def available() -> bool:
        return hasattr(signal, "SIGRTMIN") and _library() is not None

    def arm(self, first: float, every: float = 0.0) -> None:
        self._spec.it_value = _timespec(first)
        self._spec.it_interval = _timespec(every)
        self._settime(self._id, 0, ctypes.byref(self._spec), None)

    def disarm(self) -> None:
        self._spec.it_value = _TimeSpec(0, 0)
        self._spec.it_interval = _TimeSpec(0, 0)
        self._settime(self._id, 0, ctypes.byref(self._spec), None)

    def close(self) -> None:
        if self._id is not None:
            self._delete(self._id)
            self._id = None
