"""Logging that a hostile peer cannot turn into a flood: at most `burst` records per key
every `interval` seconds; the rest are counted and summed up in the next record that passes.
Pure Python (no gevent, no zmq), shared by both transports."""
from __future__ import annotations

import logging
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 10.0, burst: int = 5):
        self.logger = logger
        self.interval = interval  # seconds of one window
        self.burst = burst  # records let through per key and window
        self._windows: dict = {}  # key -> [window start, records logged, records suppressed]

    def log(self, level: int, key: str, msg: str, *args, exc_info=None) -> bool:
        """Log unless `key` already logged `burst` records in this window; True if logged."""
        now = time.monotonic()
        w = self._windows.get(key)
        if w is None or now - w[0] >= self.interval:
            if len(self._windows) > 1000:  # keys come from our own code, but stay bounded
                self._windows.clear()
            suppressed = w[2] if w else 0
            w = self._windows[key] = [now, 0, 0]
            if suppressed:
                msg += " (%d similar messages suppressed)"
                args = args + (suppressed,)
        if w[1] >= self.burst:
            w[2] += 1
            return False
        w[1] += 1
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, key: str, msg: str, *args) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def exception(self, key: str, msg: str, *args) -> bool:
        return self.log(logging.ERROR, key, msg, *args, exc_info=True)


class TokenBucket:
    """`burst` events at once, refilled at `rate` per second."""

    def __init__(self, burst: int, rate: float):
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
