"""Code written for ipykernel's deprecated `ipykernel.comm.Comm` (matplotlib's nbagg backend,
bokeh's `show(..., notebook_handle=True)`/`push_notebook`) imports that class itself. Under
another kernel ipykernel's Comm finds no ipykernel Kernel singleton and silently drops every
message, so those figures never update. geokernel never imports ipykernel: an import hook waits
until user code imports `ipykernel.comm` (from an installed ipykernel) and then binds its `Comm`
name to a comm of the kernel's own comm system (what ipykernel 7 itself recommends instead:
`comm.create_comm`). Without ipykernel installed that import fails as it does anywhere."""
from __future__ import annotations

import importlib.abc
import sys

TARGET = "ipykernel.comm"
_IPYKERNEL_ONLY = ("kernel",)  # ipykernel Comm arguments the comm package lacks
# ipykernel 7's own warning, shown as there (the cell's stderr shows it when a cell makes one)
DEPRECATED = ("The `ipykernel.comm.Comm` class has been deprecated. Please use the `comm` module "
              "instead.For creating comms, use the function `from comm import create_comm`.")


def comm_class(base, **bound):
    """A class taking ipykernel.comm.Comm's arguments, made from the kernel's comm class and
    the keyword arguments it is always given (its publisher and kernel)."""

    class Comm(base):
        def __init__(self, target_name="", data=None, metadata=None, buffers=None,
                     show_warning=True, **kwargs):
            if show_warning:
                import warnings

                warnings.warn(DEPRECATED, DeprecationWarning, stacklevel=2)
            for name in _IPYKERNEL_ONLY:
                kwargs.pop(name, None)
            if target_name:
                kwargs["target_name"] = target_name
            super().__init__(data=data, metadata=metadata, buffers=buffers, **bound, **kwargs)

    Comm.__qualname__ = "Comm"
    Comm.__module__ = __name__
    return Comm


def _bind(module, comm) -> None:
    module.Comm = comm
    inner = sys.modules.get(TARGET + ".comm")
    if inner is not None:
        inner.Comm = comm


class _Loader(importlib.abc.Loader):
    def __init__(self, real, comm):
        self._real = real
        self._comm = comm

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        self._real.exec_module(module)
        _bind(module, self._comm)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, comm):
        self._comm = comm

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:  # the finder that would load it without us
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, self._comm)
                return spec
        return None


def install(base, **bound) -> None:
    """Bind ipykernel.comm.Comm to comms made from `base` (the kernel's comm class, given
    `bound`) whenever user code imports it; once per process."""
    comm = comm_class(base, **bound)
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    if TARGET in sys.modules:  # imported before the kernel loaded (a start-up file)
        _bind(sys.modules[TARGET], comm)
    sys.meta_path.insert(0, _Finder(comm))
