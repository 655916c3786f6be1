"""Reading and checking a Jupyter connection file (plain JSON, no jupyter_client)."""
from __future__ import annotations

import json
from collections import namedtuple

CHANNELS = ("shell", "control", "stdin", "iopub", "hb")


class ConnectionFileError(Exception):
    """The connection file is missing, unreadable or malformed (one-line message)."""


class ConnectionInfo(namedtuple("ConnectionInfo",
                                "transport ip ports key signature_scheme curve_publickey curve_secretkey",
                                defaults=(None, None))):
    """What the kernel needs from the file (a namedtuple: dataclasses costs start-up time).
    curve_publickey/curve_secretkey: the kernel's CurveZMQ keypair as Z85 bytes (jupyter_client
    8.9+ writes them with transport_encryption), or None: no encryption."""

    __slots__ = ()

    def url(self, channel: str) -> str:
        port = self.ports[channel]
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{port}"
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"tcp://{host}:{port}"


def load_connection_file(path: str) -> ConnectionInfo:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ConnectionFileError(f"connection file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConnectionFileError(f"cannot read connection file {path}: {e}") from None
    except ValueError as e:
        raise ConnectionFileError(f"connection file {path} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConnectionFileError(f"connection file {path} must hold a JSON object")
    transport = raw.get("transport", "tcp")
    if transport not in ("tcp", "ipc"):
        raise ConnectionFileError(f"connection file {path}: unsupported transport {transport!r}")
    ports = {}
    for ch in CHANNELS:
        port = raw.get(f"{ch}_port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConnectionFileError(f"connection file {path}: {ch}_port must be a port number, got {port!r}")
        ports[ch] = port
    ip = raw.get("ip", "127.0.0.1")
    key = raw.get("key", "")
    scheme = raw.get("signature_scheme", "hmac-sha256")
    if not isinstance(ip, str) or not isinstance(key, str) or not isinstance(scheme, str):
        raise ConnectionFileError(f"connection file {path}: ip, key and signature_scheme must be strings")
    curve = [raw.get("curve_publickey"), raw.get("curve_secretkey")]
    if any(k is not None for k in curve):
        if not all(isinstance(k, str) and len(k) == 40 for k in curve):
            raise ConnectionFileError(f"connection file {path}: curve_publickey and curve_secretkey "
                                      "must both be 40-character Z85 keys")
        curve = [k.encode("ascii") for k in curve]
    return ConnectionInfo(transport, ip, ports, key.encode("utf-8"), scheme, *curve)
