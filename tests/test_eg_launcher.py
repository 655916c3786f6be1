"""`geokernel launch` speaking Enterprise Gateway's response protocol to a stand-in for EG's
ResponseManager (the same decryption EG does: RSA PKCS#1 v1.5 for the AES key, AES-ECB for the
connection info), then driven by jupyter_client and EG's comm-port requests. The real EG over
SSH is tests/test_eg_distributed.py."""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from jupyter_client import BlockingKernelClient

from geokernel.launcher.options import OptionsError, parse, parse_port_range

from conftest import collect_iopub


from Cryptodome.Cipher import AES, PKCS1_v1_5  # noqa: E402
from Cryptodome.PublicKey import RSA  # noqa: E402
from Cryptodome.Util.Padding import unpad  # noqa: E402


def _decrypt(data: bytes, private_key) -> dict:
    """What EG's ResponseManager._decode_payload does with a version-1 payload."""
    payload = json.loads(base64.b64decode(data))
    assert payload["version"] == 1
    aes_key = PKCS1_v1_5.new(private_key).decrypt(base64.b64decode(payload["key"]), b"\x42")
    plain = AES.new(aes_key, AES.MODE_ECB).decrypt(base64.b64decode(payload["conn_info"]))
    return json.loads(unpad(plain, 16).decode())


def _send_comm(port: int, request: dict) -> None:
    """What EG's RemoteProcessProxy._send_listener_request does: connect, send, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.send(json.dumps(request).encode())


class Launched:
    """`geokernel launch` in a subprocess, answering a stand-in for EG's response socket."""

    def __init__(self, kernel_id="0e6b2f1c-0000-4000-8000-000000000015"):
        self.kernel_id = kernel_id
        private_key = RSA.generate(1024)
        public_b64 = base64.b64encode(private_key.publickey().export_key(format="DER")).decode()
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(60)
        self.kc = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geokernel", "launch", "--RemoteProcessProxy.kernel-id", kernel_id,
             "--RemoteProcessProxy.response-address", f"127.0.0.1:{server.getsockname()[1]}",
             "--RemoteProcessProxy.public-key", public_b64, "--RemoteProcessProxy.port-range", "0..0",
             "--RemoteProcessProxy.spark-context-initialization-mode", "none", "--ip", "127.0.0.1"],
            stdin=subprocess.DEVNULL)
        try:
            conn, _ = server.accept()
            data = b""
            with conn:
                while chunk := conn.recv(1024):
                    data += chunk
            self.info = _decrypt(data, private_key)
            self.kc = BlockingKernelClient()
            self.kc.load_connection_info({k: v for k, v in self.info.items()
                                          if k not in ("pid", "pgid", "comm_port", "kernel_id")})
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=60)
        except BaseException:
            self.close()
            raise
        finally:
            server.close()

    def close(self):
        if self.kc is not None:
            self.kc.stop_channels()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def launched():
    k = Launched()
    yield k.proc, k.kc, k.info, k.kernel_id
    k.close()


def _run(kc, code, timeout=30):
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return reply, collect_iopub(kc, msg_id, timeout)


def _stdout(msgs):
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def test_response_carries_what_eg_reads(launched):
    proc, kc, info, kernel_id = launched
    assert info["kernel_id"] == kernel_id
    assert info["pid"] == proc.pid
    assert info["pgid"] == os.getpgid(proc.pid)
    assert info["ip"] == "127.0.0.1" and info["transport"] == "tcp"
    assert info["signature_scheme"] == "hmac-sha256" and len(info["key"]) == 36
    assert {"shell_port", "iopub_port", "stdin_port", "hb_port", "control_port", "comm_port"} <= set(info)


def test_cells_run_in_one_thread_and_no_connection_file_is_left(launched):
    import glob
    import tempfile

    proc, kc, info, kernel_id = launched
    reply, msgs = _run(kc, "import os\nprint(os.getpid(), len(os.listdir('/proc/self/task')))")
    assert reply["content"]["status"] == "ok"
    assert _stdout(msgs).split() == [str(proc.pid), "1"]  # one OS thread
    # the temp connection file holds the key: gone once the kernel has read it
    assert glob.glob(os.path.join(tempfile.gettempdir(), "geokernel-eg-*", f"kernel-{kernel_id}.json")) == []


def test_comm_port_poll_and_bad_requests_are_harmless(launched):
    proc, kc, info, _ = launched
    port = info["comm_port"]
    _send_comm(port, {"signum": 0})  # EG's liveness poll
    for junk in (b"not json", b"[1, 2]", b'{"signum": "KILL"}', b'{"signum": 99999}', b"\xff\xfe"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.send(junk)
    reply, msgs = _run(kc, "print('alive')")
    assert _stdout(msgs) == "alive\n" and proc.poll() is None


def test_comm_port_sigint_interrupts_a_sleeping_cell(launched):
    proc, kc, info, _ = launched
    msg_id = kc.execute("import time\nprint('start', flush=True)\ntime.sleep(30)\nprint('not reached')")
    # wait for the cell to be running before EG-style signalling
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    t0 = time.monotonic()
    _send_comm(info["comm_port"], {"signum": 2})
    reply = kc.get_shell_msg(timeout=20)
    elapsed = time.monotonic() - t0
    assert reply["content"]["status"] == "error", reply["content"]
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert elapsed < 20  # far below the 30 s sleep (not a timing assertion: a liveness bound)
    reply, msgs = _run(kc, "print('after')")
    assert _stdout(msgs) == "after\n"


def test_comm_port_shutdown_ends_the_kernel(launched):
    proc, kc, info, _ = launched
    _send_comm(info["comm_port"], {"shutdown": 1})
    assert proc.wait(20) == 0
    with pytest.raises(ConnectionRefusedError):  # EG reads a refused comm port as "gone"
        _send_comm(info["comm_port"], {"signum": 0})


def test_comm_port_sigkill_ends_the_process_at_once():
    k = Launched("0e6b2f1c-0000-4000-8000-000000000009")
    try:
        _send_comm(k.info["comm_port"], {"signum": 9})
        assert k.proc.wait(20) in (-9, 137)
    finally:
        k.close()


def test_without_response_address_the_connection_file_is_kept_and_works(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "geokernel", "launch", "--kernel-id", "pull-1",
                             "--public-key", "unused", "--ip", "127.0.0.1"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kc = None
    try:
        line = proc.stderr.readline()
        assert line.startswith("geokernel launch: connection file ")
        path = line.split("connection file ", 1)[1].strip()
        kc = BlockingKernelClient(connection_file=path)
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply, msgs = _run(kc, "print(6 * 7)")
        assert _stdout(msgs) == "42\n"
        kc.shutdown()
        assert proc.wait(20) == 0
        os.remove(path)
        os.rmdir(os.path.dirname(path))
    finally:
        if kc is not None:
            kc.stop_channels()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_options_accept_both_spellings_and_reject_bad_input():
    a = parse(["--kernel-id", "k", "--public-key", "p", "--response-address", "10.0.0.1:8877",
               "--port-range", "40000..41000", "--kernel-class-name", "x.Y", "--cluster-type", "none"])
    b = parse(["--RemoteProcessProxy.kernel-id", "k", "--RemoteProcessProxy.public-key", "p",
               "--RemoteProcessProxy.response-address", "10.0.0.1:8877",
               "--RemoteProcessProxy.port-range", "40000..41000"])
    assert a == b and a.port_range == (40000, 41000) and a.ip == "0.0.0.0"
    assert parse_port_range("0..0") == (0, 0)
    for bad in (["--public-key", "p"], ["--kernel-id", "k"],
                ["--kernel-id", "k", "--public-key", "p", "--response-address", "nohost"],
                ["--kernel-id", "k", "--public-key", "p", "--port-range", "5..10"],
                ["--kernel-id", "k", "--public-key", "p", "--port-range", "a..b"]):
        with pytest.raises(OptionsError):
            parse(bad)


def test_bad_public_key_is_a_one_line_error():
    r = subprocess.run([sys.executable, "-m", "geokernel", "launch", "--kernel-id", "k",
                        "--public-key", "bm90IGEga2V5", "--response-address", "127.0.0.1:9"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("geokernel launch: error: --public-key is not a base64 RSA public key")
