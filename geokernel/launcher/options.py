"""The launcher's command line: the option names Enterprise Gateway's own launcher
(launch_ipykernel.py) accepts, in both spellings (`--kernel-id` and the older
`--RemoteProcessProxy.kernel-id`), so EG's stock kernelspec argv works unchanged."""
from __future__ import annotations

import os
from collections import namedtuple

# EG's launcher reads these two from the environment too (the EG_ spelling is older)
MIN_PORT_RANGE_SIZE = int(os.environ.get("MIN_PORT_RANGE_SIZE",
                                         os.environ.get("EG_MIN_PORT_RANGE_SIZE", "1000")))


class LaunchOptions(namedtuple("LaunchOptions",
                               "kernel_id response_address public_key port_range ip log_level")):
    """What the launcher needs; port_range is (lower, upper), (0, 0) for any free port."""

    __slots__ = ()


class OptionsError(Exception):
    """Bad or missing launcher arguments (one-line message)."""


def parse_port_range(text: str | None, min_size: int = MIN_PORT_RANGE_SIZE) -> tuple[int, int]:
    """'LOWER..UPPER' (EG's format; '0..0' or empty means any port). A non-empty range must
    span at least `min_size` ports, as EG's launcher requires."""
    if not text:
        return 0, 0
    parts = text.split("..")
    try:
        if len(parts) != 2:
            raise ValueError("expected LOWER..UPPER")
        lower, upper = int(parts[0]), int(parts[1])
    except ValueError as e:
        raise OptionsError(f"bad --port-range {text!r}: {e}") from None
    if not (0 <= lower <= upper < 65536):
        raise OptionsError(f"bad --port-range {text!r}: ports must be 0..65535, lower <= upper")
    if upper - lower != 0 and upper - lower < min_size:
        raise OptionsError(f"bad --port-range {text!r}: the range must span at least {min_size} "
                           "ports (MIN_PORT_RANGE_SIZE)")
    return lower, upper


def parse(argv, min_port_range_size: int = MIN_PORT_RANGE_SIZE) -> LaunchOptions:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, as OptionsError
            raise OptionsError(message)

    p = Parser(prog="geokernel launch",
               description="Start geokernel for Jupyter Enterprise Gateway's remote process proxies.")
    for name in ("kernel-id", "response-address", "public-key", "port-range",
                 "spark-context-initialization-mode", "cluster-type"):
        p.add_argument(f"--{name}", f"--RemoteProcessProxy.{name}", dest=name.replace("-", "_"),
                       nargs="?")
    p.add_argument("--kernel-class-name", nargs="?", help="ignored: the kernel is geokernel")
    p.add_argument("--ip", default=os.environ.get("GEOKERNEL_LAUNCH_IP", "0.0.0.0"),
                   help="address the kernel's ports bind to (default 0.0.0.0, as EG's launcher)")
    p.add_argument("--log-level", default=os.environ.get("GEOKERNEL_LOG_LEVEL", "WARNING"))
    p.add_argument("connection_file", nargs="?", help="ignored (deprecated in EG's launcher too)")
    a = p.parse_args(argv)
    if not a.kernel_id:
        raise OptionsError("--kernel-id is required")
    if not a.public_key:
        raise OptionsError("--public-key is required")
    if a.response_address is not None:
        host, sep, port = a.response_address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise OptionsError(f"bad --response-address {a.response_address!r}: expected HOST:PORT")
    return LaunchOptions(a.kernel_id, a.response_address, a.public_key,
                         parse_port_range(a.port_range, min_port_range_size), a.ip, a.log_level)
