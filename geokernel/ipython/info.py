"""kernel_info content for the IPython interpreter, computed WITHOUT importing IPython, so the
kernel can answer kernel_info before IPython is loaded (start-up to "ready")."""
from __future__ import annotations

import importlib.util
import os
import sys

PY_VERSION = sys.version.split()[0]  # as ipykernel reports it
HELP_LINKS = [
    {"text": "Python Reference", "url": f"https://docs.python.org/{sys.version_info[0]}.{sys.version_info[1]}"},
    {"text": "IPython Reference", "url": "https://ipython.org/documentation.html"},
    {"text": "NumPy Reference", "url": "https://docs.scipy.org/doc/numpy/reference/"},
    {"text": "SciPy Reference", "url": "https://docs.scipy.org/doc/scipy/reference/"},
    {"text": "Matplotlib Reference", "url": "https://matplotlib.org/contents.html"},
    {"text": "SymPy Reference", "url": "http://docs.sympy.org/latest/index.html"},
    {"text": "pandas Reference", "url": "https://pandas.pydata.org/pandas-docs/stable/"},
]
LANGUAGE_INFO = {
    "name": "python", "version": PY_VERSION, "mimetype": "text/x-python",
    "codemirror_mode": {"name": "ipython", "version": 3}, "pygments_lexer": "ipython3",
    "nbconvert_exporter": "python", "file_extension": ".py",
}
# what kernel_info advertises before and after IPython is loaded (one list, so both agree), in
# ipykernel 7's order: subshells are greenlets (geokernel/subshells.py); debug_request is always
# wired (geokernel.debugger)
SUPPORTED_FEATURES = ("kernel subshells", "debugger")
_banner: str | None = None


def ipython_version() -> str:
    if "IPython.core.release" in sys.modules:
        return sys.modules["IPython.core.release"].version
    # IPython/core/release.py holds only assignments: run it alone, without the package
    spec = importlib.util.find_spec("IPython")
    path = os.path.join(spec.submodule_search_locations[0], "core", "release.py")
    ns: dict = {}
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), ns)
    return ns["version"]


def banner() -> str:
    """The same text IPython's shell.banner starts with."""
    global _banner
    if _banner is None:
        _banner = (f"Python {sys.version.splitlines()[0]}\n"
                   "Type 'copyright', 'credits' or 'license' for more information\n"
                   f"IPython {ipython_version()} -- An enhanced Interactive Python. Type '?' for help.\n")
    return _banner


def kernel_info() -> dict:
    features = list(SUPPORTED_FEATURES)
    return {"language_info": LANGUAGE_INFO, "banner": banner(), "help_links": HELP_LINKS,
            "debugger": "debugger" in features, "supported_features": features}
