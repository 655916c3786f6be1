"""EG's comm port: EG connects, sends one JSON object and closes. {"signum": N} signals the
kernel process (0 is EG's liveness poll, 2 an interrupt: the kernel's SIGINT handler
interrupts the running cell), {"shutdown": 1} ends the listener, and since the kernel is this
very process, the kernel too (EG considers the kernel gone once the port refuses).

A gevent greenlet in the kernel's one thread: it runs whenever the hub runs, which during a
running cell is every execution tick (geokernel/interrupts.py), so interrupts land during
`time.sleep` and pure-Python loops like interrupt_request messages do."""
from __future__ import annotations

import json
import logging
import os
import signal

import gevent

log = logging.getLogger("geokernel.launcher")


class CommListener:
    """Serves EG's requests on `sock` (a bound gevent socket). Limits: `max_request` bytes per
    request (EG's are ~20), `timeout` seconds for a client to finish sending (EG's send then
    close takes microseconds); a request over either is logged and dropped."""

    def __init__(self, sock, pid: int | None = None, max_request: int = 65536,
                 timeout: float = 5.0, on_first_turn=None, backlog: int = 16):
        self.sock = sock
        self.pid = os.getpid() if pid is None else pid
        self.max_request = max_request
        self.timeout = timeout
        self.on_first_turn = on_first_turn  # run once the hub first runs the listener
        self.backlog = backlog
        self.greenlet = None
        self.closed = False

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self) -> None:
        self.sock.listen(self.backlog)
        self.greenlet = gevent.spawn(self._serve)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _serve(self) -> None:
        if self.on_first_turn is not None:
            self.on_first_turn()
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self.closed:
                    return
                log.warning("comm port accept failed", exc_info=True)
                gevent.sleep(0.1)
                continue
            try:
                request = self._read(conn)
            finally:
                conn.close()
            if request is not None:
                self.handle(request)

    def _read(self, conn):
        data = bytearray()
        try:
            with gevent.Timeout(self.timeout):
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > self.max_request:
                        log.warning("comm port request over %d bytes: dropped", self.max_request)
                        return None
        except gevent.Timeout:
            log.warning("comm port request not finished within %.1f s: dropped", self.timeout)
            return None
        except OSError as e:
            log.warning("comm port read failed: %s", e)
            return None
        if not data:
            return None
        try:
            request = json.loads(data.decode("utf-8"))
        except ValueError as e:  # includes UnicodeDecodeError
            log.warning("comm port request is not JSON (%s): dropped", e)
            return None
        if not isinstance(request, dict):
            log.warning("comm port request is not a JSON object: dropped")
            return None
        return request

    def handle(self, request: dict) -> None:
        signum = request.get("signum")
        if signum is not None:
            self._signal(signum)
        if request.get("shutdown"):
            log.info("comm port: shutdown requested")
            self.close()
            # this process is the kernel: end it the way a SIGTERM does (clean finish)
            os.kill(self.pid, signal.SIGTERM)

    def _signal(self, signum) -> None:
        if isinstance(signum, bool) or not isinstance(signum, (int, str)) or \
                not str(signum).isdigit() or int(signum) >= signal.NSIG:
            log.warning("comm port: bad signum %r: dropped", signum)
            return
        signum = int(signum)
        if signum:  # 0 is EG's liveness poll (every few seconds): not worth a log line
            log.info("comm port: signal %d", signum)
        if signum == signal.SIGKILL and self.pid == os.getpid():
            os._exit(128 + signum)  # as PID 1 of a container a self-SIGKILL would be ignored
        os.kill(self.pid, signum)
