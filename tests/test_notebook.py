"""docs/tutorial.ipynb runs, top to bottom, and its stored outputs come from such a run.

- The notebook is executed from a clean kernel (the installed ``python3``
  Jupyter kernel, started in docs/ with this checkout first on PYTHONPATH) by
  ``execute_notebook`` of docs/run_tutorial.py, the script that also rewrites
  it in place. A cell that raises fails the test, and the message names it:
  its index, the heading above it and its first line.
- The stored file is checked as it is: every code cell has an execution count
  and the counts run 1, 2, 3, ... in order (so the outputs come from one run
  from the top), no stored output is an error, the figures are there, and the
  file stays small.

Re-run it after changing the notebook or the code it shows:
``python docs/run_tutorial.py``.
"""
import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.reference

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
MAX_BYTES = 1_500_000


def _runner():
    spec = importlib.util.spec_from_file_location("run_tutorial", ROOT / "docs" / "run_tutorial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stored():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def _code_cells(nb):
    return [(k, c) for k, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def _first_line(cell):
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return next((line for line in source.splitlines() if line.strip()), "")


def test_notebook_runs_top_to_bottom():
    import nbformat

    runner = _runner()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    failure = None
    try:
        runner.execute_notebook(nb, cwd=NOTEBOOK.parent)
    except runner.CellError as err:
        failure = f"docs/tutorial.ipynb: {err}"
    if failure:
        pytest.fail(failure, pytrace=False)
    codes = _code_cells(nb)
    counts = [c.execution_count for _, c in codes]
    assert counts == list(range(1, len(codes) + 1)), f"execution counts of the fresh run: {counts}"
    images = sum("image/png" in o.get("data", {}) for _, c in codes for o in c.outputs)
    assert images >= 9, f"the fresh run drew {images} figures, expected at least 9"


def test_stored_outputs_come_from_one_top_to_bottom_run():
    codes = _code_cells(_stored())
    assert codes, "docs/tutorial.ipynb has no code cells"
    for number, (index, cell) in enumerate(codes, 1):
        count = cell.get("execution_count")
        assert count == number, (
            f"docs/tutorial.ipynb cell {index} ({_first_line(cell)!r}) has execution count "
            f"{count}, expected {number}: the stored outputs are not from one top-to-bottom "
            f"run; re-run it with `python docs/run_tutorial.py`")
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, (f"docs/tutorial.ipynb cell {index} ({_first_line(cell)!r}) stores an "
                            f"error: {errors[0].get('ename')}: {errors[0].get('evalue')}")


def test_stored_notebook_has_its_figures_and_stays_small():
    nb = _stored()
    images = [o["data"]["image/png"] for _, c in _code_cells(nb) for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 9, f"docs/tutorial.ipynb stores {len(images)} figures, expected at least 9"
    size = NOTEBOOK.stat().st_size
    assert size < MAX_BYTES, f"docs/tutorial.ipynb is {size} bytes, more than {MAX_BYTES}"
