"""Kernelspec discovery (the only place jupyter_client is used, lazily)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .errors import NoSuchKernelError

log = logging.getLogger(__name__)


@dataclass
class KernelSpecInfo:
    name: str
    display_name: str
    language: str
    argv: list
    interrupt_mode: str = "signal"
    resource_dir: str = ""
    env: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def _manager():
    # Imported lazily: jupyter_client is heavy and only needed for discovery.
    from jupyter_client.kernelspec import KernelSpecManager
    return KernelSpecManager()


def _convert(name: str, spec, resource_dir: str) -> KernelSpecInfo:
    return KernelSpecInfo(
        name=name,
        display_name=spec.display_name,
        language=spec.language,
        argv=list(spec.argv),
        interrupt_mode=spec.interrupt_mode or "signal",
        resource_dir=resource_dir,
        env=dict(spec.env or {}),
        metadata=dict(spec.metadata or {}),
    )


def list_kernelspecs() -> list[KernelSpecInfo]:
    """Every installed kernelspec, sorted by name; broken ones are logged and skipped."""
    ksm = _manager()
    out = []
    for name, resource_dir in sorted(ksm.find_kernel_specs().items()):
        try:
            out.append(_convert(name, ksm.get_kernel_spec(name), resource_dir))
        except Exception as e:  # a broken kernel.json must not hide the others
            log.warning("skipping kernelspec %s: %s", name, e)
    return out


def get_kernelspec(name: str) -> KernelSpecInfo:
    ksm = _manager()
    try:
        spec = ksm.get_kernel_spec(name)
    except Exception as e:
        raise NoSuchKernelError(f"no kernelspec named {name!r}: {e}") from None
    return _convert(name, spec, spec.resource_dir)
