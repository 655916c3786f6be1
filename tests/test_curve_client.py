"""geokernel.client speaks CurveZMQ: start_kernel(encrypt=True) on both kernels that declare it
(geokernel, ipykernel 7.3+), and connect() to a kernel jupyter_client started with
transport_encryption="required"."""
from __future__ import annotations

import json

import pytest

from conftest import start_kernel as jc_start_kernel, stop_kernel as jc_stop_kernel
from geokernel.client import connect, start_kernel
from test_client import _shutdown


@pytest.mark.parametrize("name", ["geokernel", "python3"])
def test_start_encrypted(name):
    k = start_kernel(name, encrypt=True, startup_timeout=60)
    try:
        with open(k.connection_file) as f:
            assert len(json.load(f)["curve_secretkey"]) == 40
        r = k.execute("print(6 * 7)")
        assert r.status == "ok" and r.stdout == "42\n"
        assert k.is_alive()
    finally:
        _shutdown(k)


def test_connect_to_a_jupyter_client_encrypted_kernel():
    km, kc = jc_start_kernel(transport_encryption="required")
    try:
        k = connect(km.connection_file)
        r = k.execute("print('over curve')")
        assert r.stdout == "over curve\n"
        k.close()
    finally:
        jc_stop_kernel(km, kc)
