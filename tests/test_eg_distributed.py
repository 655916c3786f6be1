"""geokernel as a remote kernel of a real Jupyter Enterprise Gateway, across a process boundary
over SSH: the test starts sshd (Debian's openssh-server, throwaway host and client keys) on a
loopback address and EG with its DistributedProcessProxy pointed at it, then drives the kernel
through EG's REST API and websocket: cells, interrupt, restart, shutdown; nothing is left
running afterwards.

sshd listens on 127.0.0.2, not 127.0.0.1: EG skips SSH for hosts it considers local
(jupyter_client's LOCAL_IPS holds 127.0.0.1 and this machine's addresses, not 127.0.0.2), and
the point is to go through SSH as on a real cluster. 127.0.0.2 is still loopback.

EG 3.3 pins jupyter_client<7 and pyzmq<25, so it lives in its own venv: $GEOKERNEL_EG_VENV,
default .venv-eg in the repository, created here on first use (pip, ~1 min). Prerequisites
that are missing make the test FAIL with the command to fix it (not skip): CI installs
openssh-server (.ci/run). `-m "not eg"` deselects it on a machine without sshd.

Set GEOKERNEL_EG_IPYKERNEL_LAUNCHER to EG's launch_ipykernel.py (from EG's repository,
etc/kernel-launchers/python/scripts/) to run the same steps on ipykernel with EG's own
launcher, for comparison (the timings are printed; run with -s)."""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.eg

PORT_RANGE = (40000, 49999)  # EG passes it to the launcher as --port-range
HOST = "127.0.0.2"  # loopback, but not "local" to EG: the kernel really starts over SSH
REPO = Path(__file__).resolve().parent.parent
EG_VERSION = "3.3.0"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
DISTRIBUTED_SPEC = REPO / "share" / "eg" / "kernelspecs" / "geokernel_distributed" / "kernel.json"


def _free_port(host="127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_port(host, port, proc, timeout=60.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening on {host}:{port}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on {host}:{port} within {timeout} s")


def _stop(proc, timeout=20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


# ---- the EG venv, sshd and EG ---------------------------------------------------------------
@pytest.fixture(scope="module")
def eg_venv() -> Path:
    venv = Path(os.environ.get("GEOKERNEL_EG_VENV", REPO / ".venv-eg"))
    if not (venv / "bin" / "jupyter-enterprisegateway").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                            f"jupyter_enterprise_gateway=={EG_VERSION}", "ipykernel>=6.29,<7"],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.fail(f"cannot install Enterprise Gateway into {venv}:\n{r.stderr[-2000:]}")
    return venv


class Sshd:
    """sshd -D on HOST with its own config, throwaway host key and one authorized client key."""

    def __init__(self, folder: Path):
        if not os.path.exists(SSHD):
            pytest.fail("sshd not found: apt-get install -y openssh-server (CI: .ci/run does it)")
        self.folder = folder
        self.port = _free_port(HOST)
        self.user = getpass.getuser()
        keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
        for name in ("host_key", "client_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)],
                           check=True)
        shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", f"ListenAddress {HOST}", f"HostKey {folder / 'host_key'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
            f"AllowUsers {self.user}", "LogLevel VERBOSE", ""]))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        self.log = open(folder / "sshd.log", "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        _wait_port(HOST, self.port, self.proc, what="sshd")

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()


class Gateway:
    """`jupyter enterprisegateway` on 127.0.0.1 with the distributed proxy aimed at HOST."""

    def __init__(self, venv: Path, folder: Path, sshd: Sshd, kernelspecs: dict):
        home = folder / "home"  # paramiko reads ~/.ssh for the client key and known_hosts
        (home / ".ssh").mkdir(parents=True)
        shutil.copy(sshd.folder / "client_key", home / ".ssh" / "id_ed25519")
        os.chmod(home / ".ssh" / "id_ed25519", 0o600)
        host_key = (sshd.folder / "host_key.pub").read_text().split()[:2]
        (home / ".ssh" / "known_hosts").write_text(f"[{HOST}]:{sshd.port} {' '.join(host_key)}\n")
        data = folder / "share" / "jupyter"
        for name, spec in kernelspecs.items():
            (data / "kernels" / name).mkdir(parents=True)
            (data / "kernels" / name / "kernel.json").write_text(json.dumps(spec, indent=1))
        self.kernel_logs = folder / "kernel-logs"
        self.kernel_logs.mkdir()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "EG_", "KERNEL_"))}
        env.update(HOME=str(home), JUPYTER_PATH=str(data), JUPYTER_DATA_DIR=str(data),
                   JUPYTER_RUNTIME_DIR=str(folder / "runtime"), JUPYTER_CONFIG_DIR=str(folder / "config"),
                   EG_REMOTE_HOSTS=HOST, EG_SSH_PORT=str(sshd.port), EG_REMOTE_USER=sshd.user,
                   EG_RESPONSE_IP="127.0.0.1", EG_RESPONSE_PORT=str(_free_port()),
                   EG_KERNEL_LOG_DIR=str(self.kernel_logs), EG_KERNEL_LAUNCH_TIMEOUT="60",
                   EG_PORT_RANGE="%d..%d" % PORT_RANGE)
        self.log = open(folder / "eg.log", "wb")
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "jupyter-enterprisegateway"), "--ip=127.0.0.1", f"--port={self.port}",
             "--port_retries=0", "--log-level=DEBUG", "--EnterpriseGatewayApp.list_kernels=True",
             f"--EnterpriseGatewayApp.allowed_kernels={sorted(kernelspecs)!r}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=folder)
        _wait_port("127.0.0.1", self.port, self.proc, what="Enterprise Gateway")

    def request(self, method, path, body=None, timeout=90):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            pytest.fail(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:2000]}")

    def stop(self) -> None:
        _stop(self.proc, timeout=60)
        self.log.close()


# ---- the websocket protocol (jupyter_server's plain JSON messages) ------------------------------
class Channels:
    def __init__(self, gateway: Gateway, kernel_id: str, timeout=60):
        import websocket

        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{gateway.port}/api/kernels/{kernel_id}/channels", timeout=timeout)
        self.session = uuid.uuid4().hex

    def send(self, msg_type, content, channel="shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "session": self.session,
                       "username": "test", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel,
            "buffers": []}))
        return msg_id

    def replies(self, msg_id, timeout=60.0):
        """Every message whose parent is msg_id, until both the shell reply and iopub idle."""
        got, reply, idle = [], None, False
        deadline = time.monotonic() + timeout
        while reply is None or not idle:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            got.append(msg)
            if msg["channel"] == "shell":
                reply = msg
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        return reply, got

    def wait_for(self, msg_id, msg_type, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == msg_type:
                return msg

    def execute(self, code, timeout=60.0):
        return self.replies(self.send("execute_request", {"code": code, "silent": False}), timeout)

    def close(self):
        self.ws.close()


def _stdout(msgs) -> str:
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def _wait_kernel_info(ch, timeout=60.0):
    """A kernel_info reply (the kernel may still be connecting right after start/restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ch.replies(ch.send("kernel_info_request", {}), timeout=5)[0]
        except Exception:
            if time.monotonic() > deadline:
                raise


# ---- the kernels under test ---------------------------------------------------------------------
def _geokernel_spec() -> dict:
    spec = json.loads(DISTRIBUTED_SPEC.read_text())
    # this venv's python; bind the kernel's ports on the SSH host's loopback address only
    spec["argv"] = [sys.executable] + spec["argv"][1:] + ["--ip", HOST]
    return spec


def _ipykernel_spec(eg_venv: Path, launcher: str) -> dict:
    """EG's own launcher with ipykernel (EG's stock python_distributed kernelspec)."""
    return {"display_name": "ipykernel (distributed)", "language": "python",
            "metadata": {"process_proxy": {"class_name": json.loads(DISTRIBUTED_SPEC.read_text())
                                           ["metadata"]["process_proxy"]["class_name"]}},
            "argv": [str(eg_venv / "bin" / "python"), launcher,
                     "--RemoteProcessProxy.kernel-id", "{kernel_id}",
                     "--RemoteProcessProxy.response-address", "{response_address}",
                     "--RemoteProcessProxy.public-key", "{public_key}",
                     "--RemoteProcessProxy.port-range", "{port_range}",
                     "--RemoteProcessProxy.spark-context-initialization-mode", "none"]}


def _kernels(eg_venv):
    kernels = {"geokernel_distributed": _geokernel_spec()}
    launcher = os.environ.get("GEOKERNEL_EG_IPYKERNEL_LAUNCHER")
    if launcher:
        kernels["ipykernel_distributed"] = _ipykernel_spec(eg_venv, launcher)
    return kernels


def _lifecycle(gw: Gateway, name: str) -> tuple[dict, list[int]]:
    """Start, cells, interrupt, restart, shutdown through EG; returns timings and kernel pids."""
    t, pids = {}, []
    t0 = time.monotonic()
    status, model = gw.request("POST", "/api/kernels",
                               {"name": name, "env": {"KERNEL_USERNAME": "geotest"}})
    assert status == 201, model
    kid = model["id"]
    ch = Channels(gw, kid)
    assert _wait_kernel_info(ch)["content"]["status"] == "ok"
    t["start to kernel_info"] = time.monotonic() - t0

    t0 = time.monotonic()
    reply, msgs = ch.execute("import os, socket\nx = 6 * 7\n"
                             "print(os.getpid(), len(os.listdir('/proc/self/task')))")
    t["first cell"] = time.monotonic() - t0
    assert reply["content"]["status"] == "ok", reply["content"]
    pid, threads = map(int, _stdout(msgs).split())
    pids.append(pid)
    if name.startswith("geokernel"):
        assert threads == 1  # the launcher's listener is a greenlet, not a thread
    # the 5 kernel ports and the comm port, all inside EG's port range
    reply, msgs = ch.execute("import psutil\nprint(*sorted(c.laddr.port for c in "
                             "psutil.Process().net_connections('tcp') if c.status == 'LISTEN'))")
    ports = [int(p) for p in _stdout(msgs).split()]
    outside = [p for p in ports if not PORT_RANGE[0] <= p <= PORT_RANGE[1]]
    if name.startswith("geokernel"):
        assert len(ports) == 6 and not outside, ports
    elif outside:  # seen on ipykernel 6.29 under EG's launcher: recorded, not ours to fix
        t[f"(listening outside the port range: {outside})"] = 0.0
    reply, msgs = ch.execute("x")
    results = [m for m in msgs if m["msg_type"] == "execute_result"]
    assert results and results[0]["content"]["data"]["text/plain"] == "42"

    # interrupt a blocking time.sleep (EG sends SIGINT through the launcher's comm port)
    msg_id = ch.send("execute_request", {"code": "import time\nprint('sleeping', flush=True)\n"
                                                 "time.sleep(60)\nprint('not reached')",
                                         "silent": False})
    ch.wait_for(msg_id, "stream")
    t0 = time.monotonic()
    status, _ = gw.request("POST", f"/api/kernels/{kid}/interrupt")
    assert status == 204
    reply, msgs = ch.replies(msg_id, timeout=50)
    t["interrupt to reply"] = time.monotonic() - t0
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert "not reached" not in _stdout(msgs)
    reply, msgs = ch.execute("print(x)")
    assert _stdout(msgs) == "42\n"  # the kernel lives on after the interrupt

    # restart: a new kernel process over SSH, a fresh namespace
    ch.close()
    t0 = time.monotonic()
    status, _ = gw.request("POST", f"/api/kernels/{kid}/restart")
    assert status == 200
    ch = Channels(gw, kid)
    assert _wait_kernel_info(ch)["content"]["status"] == "ok"
    t["restart to kernel_info"] = time.monotonic() - t0
    assert _wait_gone(pids[0]), f"the kernel process {pids[0]} outlived the restart"
    reply, msgs = ch.execute("import os\nprint(os.getpid())\nprint('x' in globals())")
    new_pid, has_x = _stdout(msgs).split()
    pids.append(int(new_pid))
    assert int(new_pid) != pids[0] and has_x == "False"

    ch.close()
    t0 = time.monotonic()
    status, _ = gw.request("DELETE", f"/api/kernels/{kid}")
    assert status == 204
    gone = _wait_gone(pids[1])
    if not gone and not name.startswith("geokernel"):
        # seen with EG's own launcher: its listener (listen backlog 1) refuses EG's next request
        # while serving one, EG takes the refusal for "process gone" and stops there; the
        # comparison records it and waits on (the leftover check below still holds)
        t["(outlived shutdown by 20 s)"] = 0.0
        gone = _wait_gone(pids[1], timeout=120)
    assert gone, f"the kernel process {pids[1]} outlived its shutdown"
    t["shutdown until process gone"] = time.monotonic() - t0
    status, kernels = gw.request("GET", "/api/kernels")
    assert kid not in [k["id"] for k in kernels]
    return t, pids + [kid]


def test_kernels_under_enterprise_gateway_over_ssh(eg_venv, tmp_path):
    t_all = time.monotonic()
    sshd = Sshd(_mkdir(tmp_path / "sshd"))
    gw = None
    try:
        kernels = _kernels(eg_venv)
        gw = Gateway(eg_venv, tmp_path, sshd, kernels)
        t_up = time.monotonic() - t_all
        all_pids, timings = [], {}
        for name in kernels:
            t, pids = _lifecycle(gw, name)
            timings[name] = t
            all_pids += pids
            if name.startswith("geokernel"):  # (EG's own launcher logs a traceback at shutdown)
                log = (gw.kernel_logs / f"kernel-{pids[-1]}.log").read_text(errors="replace")
                assert "Traceback" not in log, log[-3000:]
        # every start and restart went through SSH (EG runs local hosts without it)
        logins = (sshd.folder / "sshd.log").read_text(errors="replace").count("Accepted publickey")
        assert logins >= 2 * len(kernels)
    finally:
        if gw is not None:
            gw.stop()
        sshd.stop()
    # nothing left running: EG, sshd, every kernel process (and any child of them)
    assert gw.proc.poll() is not None and sshd.proc.poll() is not None
    assert all(_gone(p) for p in all_pids if isinstance(p, int))
    tags = [str(tmp_path)] + [p for p in all_pids if isinstance(p, str)]  # + the kernel ids
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if any(tag in a for tag in tags for a in (p.info["cmdline"] or []))
                 and not _gone(p.info["pid"])]
    assert leftovers == []
    print(f"\nEG test: sshd + EG up in {t_up:.2f} s, whole test {time.monotonic() - t_all:.2f} s")
    for name, t in timings.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True)
    return p
