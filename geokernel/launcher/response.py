"""EG's response protocol (launcher version 1): the connection info, AES-128-ECB encrypted
(PKCS#7 padded) with a random key; that key RSA (PKCS#1 v1.5) encrypted with the public key EG
passed in --public-key (base64 DER); both base64 in a JSON object, base64 again, sent on one
TCP connection to --response-address. EG decrypts it in its ResponseManager."""
from __future__ import annotations

import base64
import json
import socket

LAUNCHER_VERSION = 1  # the payload version EG's ResponseManager understands


class ResponseError(Exception):
    """The connection info could not be encrypted or delivered (one-line message)."""


def _crypto():
    try:
        from Cryptodome.Cipher import AES, PKCS1_v1_5
        from Cryptodome.PublicKey import RSA
        from Cryptodome.Random import get_random_bytes
        from Cryptodome.Util.Padding import pad
    except ImportError:
        raise ResponseError("the Enterprise Gateway launcher needs pycryptodomex: "
                            "pip install 'geokernel[eg]'") from None
    return AES, PKCS1_v1_5, RSA, get_random_bytes, pad


def encrypt(connection_info: dict, public_key_b64: str) -> bytes:
    AES, PKCS1_v1_5, RSA, get_random_bytes, pad = _crypto()
    try:
        rsa_key = RSA.import_key(base64.b64decode(public_key_b64.encode(), validate=False))
    except (ValueError, IndexError, TypeError) as e:
        raise ResponseError(f"--public-key is not a base64 RSA public key: {e}") from None
    aes_key = get_random_bytes(16)
    plain = json.dumps(connection_info).encode("utf-8")
    conn_info = AES.new(aes_key, AES.MODE_ECB).encrypt(pad(plain, 16))
    payload = {
        "version": LAUNCHER_VERSION,
        "key": base64.b64encode(PKCS1_v1_5.new(rsa_key).encrypt(aes_key)).decode(),
        "conn_info": base64.b64encode(conn_info).decode(),
    }
    return base64.b64encode(json.dumps(payload).encode("utf-8"))


def send(address: str, payload: bytes, timeout: float = 30.0) -> None:
    """One connection to HOST:PORT carrying the payload; closing it ends the message."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            s.sendall(payload)
    except OSError as e:
        raise ResponseError(f"cannot send the connection info to {address}: {e}") from None
