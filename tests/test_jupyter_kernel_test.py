"""The community conformance suite (jupyter_kernel_test) with every sample filled in."""
from __future__ import annotations

import os
import shutil
import tempfile

import jupyter_kernel_test as jkt

_saved_ipythondir = None


def setup_module():
    """The history tests search the IPython history database: give the kernels of this module
    one of their own (the user's holds whatever other sessions ran, e.g. another `1+2`)."""
    global _saved_ipythondir
    _saved_ipythondir = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="geokernel-jkt-")


def teardown_module():
    shutil.rmtree(os.environ["IPYTHONDIR"], ignore_errors=True)
    if _saved_ipythondir is None:
        os.environ.pop("IPYTHONDIR", None)
    else:
        os.environ["IPYTHONDIR"] = _saved_ipythondir


class GeokernelTests(jkt.KernelTests):
    kernel_name = "geokernel"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('oops', file=sys.stderr)"
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import collections; collections.Ord", "matches": {"OrderedDict"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "x = 1)"]
    code_page_something = "zip?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
        {"code": "'geo' * 2", "result": "'geogeo'"},
    ]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>geo</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
         "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"


class GeokernelIopubWelcome(jkt.IopubWelcomeTests):
    kernel_name = "geokernel"
    support_iopub_welcome = True
