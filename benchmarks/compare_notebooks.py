"""Run real notebooks through nbclient on geokernel and on ipykernel ("python3") and report
every cell whose outputs differ after normalising what legitimately changes between two runs
(memory addresses, timings, pids, ids, temporary paths, dates).

    python benchmarks/compare_notebooks.py NOTEBOOK_OR_FOLDER... [--json out.json]
        [--timeout 60] [--kernels geokernel python3] [-v]

Each kernel runs the notebook in its own copy of the notebook's folder (notebooks write
files); package installs in cells (`%pip install`) are skipped. Exit status: 0 when every notebook gave the same outputs on both kernels, 1 otherwise.
tests/test_notebooks.py runs the notebooks under tests/notebooks/ with the same functions.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KERNELS = ("geokernel", "python3")

# (pattern, replacement): what differs between two runs of the same code on any kernel. Number
# patterns start only at the start of a number ((?<![\d.])): long digit runs stay linear.
_UNIT = r"(?:ns|µs|μs|us|ms|s|sec|seconds)\b"
_NUM = r"(?<![\d.])\d+(?:\.\d+)?"
_NORMALISE = [
    (re.compile(r"^The slowest run took .*\n?", re.M), ""),  # %timeit's caching warning
    (re.compile(r"^.*per loop \(mean.*$", re.M), "TIMEIT"),
    (re.compile(r"0x[0-9a-fA-F]{4,}"), "0xADDR"),
    (re.compile(r"(?<=object at )[0-9a-f]{6,}"), "ADDR"),  # IPython's ExecutionResult repr
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "HEXID"),
    (re.compile(r"/tmp/(?:ipykernel|geokernel)_\d+/\d+\.py"), "CELLFILE"),
    (re.compile(r"/tmp/[\w.-]+"), "/tmp/TMP"),
    (re.compile(r"\b(pid|PID|process)\s*[=:]?\s*\d+"), r"\1 PID"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:?\d\d|Z)?"), "DATE"),
    (re.compile(r'"(\w+_port)": \d+'), r'"\1": PORT'),  # %connect_info
    (re.compile(r'"key": "[^"]*"'), '"key": "KEY"'),
    (re.compile(r'"kernel_name": "[^"]*"'), '"kernel_name": "KERNEL"'),
    (re.compile(_NUM + r"it/s"), "RATEit/s"),
    (re.compile(_NUM + r"\s*" + _UNIT), "T"),
]


KERNEL_FRAME = "<a frame of the kernel's own code>"
_KERNEL_FILE = re.compile(r"^(?:\x1b\[[\d;]*m)*File (?:\x1b\[[\d;]*m)*\S*/(?:ipykernel|geokernel)/")


def normalise_text(text: str) -> str:
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


def _normalise_value(value):
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, list):
        return [_normalise_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_value(v) for k, v in value.items()}
    return value


def normalise_outputs(outputs: list) -> list:
    """Outputs of one cell in a comparable form: streams of one name merged (how writes are
    split into messages is timing), volatile text normalised, binary images by mime type."""
    out: list = []
    for o in outputs:
        o = copy.deepcopy(dict(o))
        kind = o.get("output_type")
        if kind == "stream":
            if out and out[-1]["output_type"] == "stream" and out[-1]["name"] == o["name"]:
                out[-1]["text"].append(o["text"])  # joined below (+= here is quadratic)
                continue
            out.append({"output_type": "stream", "name": o["name"], "text": [o["text"]]})
            continue
        if kind == "error":
            # a frame of the kernel's own code (input() without stdin raises there): each
            # kernel shows its own file and source; kept as a placeholder, so a kernel frame
            # where the other kernel has none still counts as a difference
            o["traceback"] = [KERNEL_FRAME if _KERNEL_FILE.search(t) else t
                              for t in o.get("traceback", [])]
        data = o.get("data", {})
        for mime in list(data):
            if mime.startswith("image/") and mime != "image/svg+xml":
                data[mime] = f"<{mime} data>"
        o.pop("transient", None)
        out.append(o)
    for o in out:
        if o["output_type"] == "stream":
            o["text"] = "".join(o["text"]).replace("\r\n", "\n")
    return _normalise_value(out)


_INSTALL = re.compile(r"^(\s*)[%!]\s*(?:pip|conda|mamba|micromamba)\s+install\b.*$", re.M)


def without_installs(nb):
    """Package installs in cells (`%pip install ...`, JupyterLite set-up cells) are replaced by
    `pass`: the comparison is of kernels, not of what the first run installed for the second."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = _INSTALL.sub(r"\1pass  # (install skipped by compare_notebooks)",
                                       cell.source)
    return nb


def run_notebook(path: Path, kernel: str, timeout: int = 60) -> tuple:
    """(executed notebook, seconds, error or None), run in a copy of its folder. The kernel
    gets PYTHONHASHSEED=0: the order of sets of strings is then the same in both kernels."""
    os.environ["PYTHONHASHSEED"] = "0"  # the kernel inherits nbclient's environment
    nb = without_installs(nbformat.read(str(path), as_version=4))
    with tempfile.TemporaryDirectory(prefix=f"nbcmp-{kernel}-") as tmp:
        work = Path(tmp) / "nb"
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True,
                                resources={"metadata": {"path": str(work)}},
                                startup_timeout=60)
        t0 = time.monotonic()
        error = None
        try:
            client.execute()
        except Exception as e:  # a cell timed out or the kernel died: still compare what ran
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return nb, time.monotonic() - t0, error


def compare(nbs: dict) -> list:
    """[(cell index, source head, {kernel: normalised outputs})] for cells that differ."""
    names = list(nbs)
    first = nbs[names[0]]
    diffs = []
    for i, cell in enumerate(first.cells):
        if cell.cell_type != "code":
            continue
        outs = {k: normalise_outputs(nbs[k].cells[i].get("outputs", [])) for k in names}
        if any(outs[k] != outs[names[0]] for k in names[1:]):
            diffs.append((i, cell.source.splitlines()[0][:60] if cell.source else "", outs))
    return diffs


def notebooks(args: list) -> list:
    found = []
    for a in args:
        p = Path(a)
        found.extend(sorted(p.rglob("*.ipynb")) if p.is_dir() else [p])
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS))
    ap.add_argument("--timeout", type=int, default=60, help="seconds per cell (default 60)")
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print differing outputs")
    a = ap.parse_args(argv)
    report, same = [], True
    for path in notebooks(a.paths):
        runs = {k: run_notebook(path, k, a.timeout) for k in a.kernels}
        diffs = compare({k: r[0] for k, r in runs.items()})
        same = same and not diffs
        times = ", ".join(f"{k} {r[1]:.1f}s" + (f" ({r[2]})" if r[2] else "") for k, r in runs.items())
        print(f"{'SAME' if not diffs else 'DIFF'} {path.name}: {len(diffs)} cell(s) differ; {times}")
        for i, head, outs in diffs:
            print(f"    cell {i}: {head!r}")
            if a.verbose:
                for k, o in outs.items():
                    print(f"      {k}: {json.dumps(o)[:800]}")
        report.append({"notebook": str(path), "times": {k: r[1] for k, r in runs.items()},
                       "errors": {k: r[2] for k, r in runs.items()},
                       "diffs": [{"cell": i, "source": h, "outputs": o} for i, h, o in diffs]})
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
