"""Re-execute docs/tutorial.ipynb in place: a clean kernel, every cell top to bottom.

    python docs/run_tutorial.py                 # rewrites docs/tutorial.ipynb with fresh outputs
    python docs/run_tutorial.py --check         # runs it, writes nothing

The kernel is the installed ``python3`` Jupyter kernel, started in docs/ (as
Jupyter would), with this checkout first on PYTHONPATH so that it imports the
npylstm next to this file, installed or not, and with one BLAS thread (see
``kernel_environment``). Needs nbclient, nbformat and
ipykernel (the ``test`` extra); no nbconvert.

tests/test_notebook.py imports ``execute_notebook`` from here.
"""
import argparse
import os
import re
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
NOTEBOOK = DOCS / "tutorial.ipynb"
CELL_TIMEOUT = 600          # seconds per cell; the whole notebook takes about a minute
ANSI_COLOR = re.compile(r"\x1b\[[0-9;]*m")    # the kernel colours its tracebacks


class CellError(RuntimeError):
    """A cell raised; the message names the cell (its index, heading and first line)."""


def describe_cell(nb, index):
    """'cell 12 (code cell 7, under "## 2. A sequence"): first line of its source'."""
    heading = None
    for cell in nb.cells[:index]:
        if cell.cell_type == "markdown":
            lines = [line for line in cell.source.splitlines() if line.startswith("#")]
            heading = lines[-1] if lines else heading
    code_number = sum(c.cell_type == "code" for c in nb.cells[:index + 1])
    first = next((line for line in nb.cells[index].source.splitlines() if line.strip()), "")
    under = f', under "{heading}"' if heading else ""
    return f"cell {index} (code cell {code_number}{under}): {first}"


def kernel_environment():
    """This environment, with this checkout first on PYTHONPATH and one BLAS thread.

    One BLAS thread unless OPENBLAS_NUM_THREADS is set: the notebook's matrices
    are small, and on a busy 2-core machine two BLAS threads fight the other
    processes for the cores. Measured at load 6 with `python -m npylstm.train
    --no-plots`: 46.5 s of training with the default threads, 7.8 s with one.
    """
    env = dict(os.environ)
    paths = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def execute_notebook(nb, cwd=DOCS, timeout=CELL_TIMEOUT):
    """Run every code cell of ``nb`` (a NotebookNode) in order in a fresh kernel, in place.

    Outputs and execution counts replace the old ones. Raises CellError naming
    the first cell that fails, with the kernel's traceback.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    client.reset_execution_trackers()
    with client.setup_kernel(env=kernel_environment()):
        info = client.wait_for_reply(client.kc.kernel_info())
        nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellExecutionError as err:
                traceback = ANSI_COLOR.sub("", str(err))
                raise CellError(f"{describe_cell(nb, index)}\n{traceback}") from None
        client.set_widgets_metadata()
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python docs/run_tutorial.py", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="run it, but do not write the file")
    parser.add_argument("notebook", nargs="?", default=str(NOTEBOOK),
                        help="default %(default)s")
    args = parser.parse_args(argv)
    import nbformat

    path = Path(args.notebook)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        execute_notebook(nb, cwd=path.resolve().parent)
    except CellError as err:
        print(f"{path}: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    if not args.check:
        nbformat.write(nb, path)
        print(f"wrote {path} ({path.stat().st_size} bytes), ran in {seconds:.1f} s")
    else:
        print(f"{path} ran in {seconds:.1f} s (not written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
