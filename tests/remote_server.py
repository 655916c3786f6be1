"""A real `jupyter server` on 127.0.0.1 (random port, random token) for the remote-client and
remote-bench tests; stopped, with every kernel it started, when the fixture ends."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, url: str, token: str, proc: subprocess.Popen, log_path: str):
        self.url, self.token, self.proc, self.log_path = url, token, proc, log_path

    def get(self, path: str, token: str | None = None):
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": f"token {token or self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def kernel_pids(self) -> set[int]:
        try:
            return {c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]


@contextmanager
def jupyter_server(tmp_dir, startup_timeout: float = 60.0):
    port, token = _free_port(), secrets.token_hex(16)
    root = os.path.join(tmp_dir, "root")
    os.makedirs(root, exist_ok=True)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": os.path.join(tmp_dir, "runtime")}
    argv = [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={root}", "--ServerApp.shutdown_no_activity_timeout=0"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log_path = os.path.join(tmp_dir, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = ServerProcess(f"http://127.0.0.1:{port}", token, proc, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited ({proc.returncode}):\n{server.log()}")
            try:
                server.get("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter server not up in {startup_timeout}s:\n{server.log()}")
                time.sleep(0.2)
        yield server
    finally:
        pids = server.kernel_pids()  # kernels are in their own sessions: remember them
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for pid in pids:
            try:
                p = psutil.Process(pid)
                p.wait(5)
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                p.kill()
