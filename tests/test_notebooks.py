"""Real public notebooks (tests/notebooks/, origins in tests/notebooks/README.md) run through
nbclient on geokernel and on ipykernel give the same outputs, cell by cell, after the
normalisation of benchmarks/compare_notebooks.py (addresses, timings, ids, temporary paths)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

from compare_notebooks import KERNELS, compare, run_notebook  # noqa: E402

NOTEBOOKS = sorted((HERE / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_gives_the_same_outputs_on_both_kernels(path):
    runs = {k: run_notebook(path, k, timeout=60) for k in KERNELS}
    for kernel, (_, _, error) in runs.items():
        assert error is None, (kernel, error)
    executed = {k: r[0] for k, r in runs.items()}
    # the notebooks really ran: every code cell has its execution count
    for kernel, nb in executed.items():
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source]
        assert counts and None not in counts, kernel
    diffs = compare(executed)
    assert diffs == [], [(i, head) for i, head, _ in diffs]


def test_the_comparison_sees_a_difference(tmp_path):
    """compare() is not blind: a cell whose output depends on the kernel differs."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import sys\nprint('geokernel' in sys.modules)")])
    path = tmp_path / "which.ipynb"
    nbformat.write(nb, str(path))
    executed = {k: run_notebook(path, k, timeout=60)[0] for k in KERNELS}
    assert [i for i, _, _ in compare(executed)] == [0]
