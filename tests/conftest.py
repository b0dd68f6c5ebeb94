"""Test-wide setup.

- Subprocesses that run ``python -m npylstm...`` import the npylstm of this
  checkout, installed or not (a git worktree, a fresh clone).
- Keras runs on its torch backend, so no other framework is needed; this must
  be set before anything imports keras.

The ``reference`` marker: tests that need a test-only reference package
(torch, onnx, onnxruntime, keras, distributed, nbclient; see REFERENCE_PACKAGES)
carry it, so that everything else is one selection, ``-m "not reference"``,
which runs with numpy, matplotlib and pytest alone (``.ci/run`` runs it on the
oldest and newest Python and NumPy supported).

- A test module that needs one of them says so right after its imports::

      pytestmark = pytest.mark.reference

  Such a module usually imports torch (etc.) at its top, so it cannot even be
  imported without it. Therefore, when ``-m`` contains ``not reference`` or
  when any reference package is missing, this file does not collect it at all
  (``pytest_ignore_collect`` finds that line in the source, without importing
  the module).
- A single test in an otherwise light module carries
  ``@pytest.mark.reference`` and imports the package inside the test. ``-m "not
  reference"`` deselects it; when a reference package is missing it is
  deselected too.

Not collecting, not skipping: the light run reports only what it ran, and a
line at the end says how many modules and tests were left out and why. With
every reference package installed and no ``-m``, everything runs.
"""
import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("KERAS_BACKEND", "torch")

REFERENCE_PACKAGES = ("torch", "onnx", "onnxruntime", "keras", "distributed", "nbclient")
MISSING = [name for name in REFERENCE_PACKAGES if importlib.util.find_spec(name) is None]
# `pytestmark = pytest.mark.reference` (or a list holding it) at the start of a line.
MODULE_MARK = re.compile(r"^pytestmark\s*=.*\bpytest\.mark\.reference\b", re.M)

_left_out = {"modules": [], "tests": 0}


def _light(config):
    """True when reference tests are not to be collected: excluded by -m, or a package missing."""
    return bool(MISSING) or "not reference" in (config.getoption("markexpr") or "")


def pytest_ignore_collect(collection_path, config):
    if (collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and _light(config)
            and MODULE_MARK.search(collection_path.read_text(encoding="utf-8"))):
        _left_out["modules"].append(collection_path.name)
        return True
    return None


def pytest_collection_modifyitems(config, items):
    if not MISSING:
        return                      # -m "not reference" deselects the marked tests by itself
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("reference") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        _left_out["tests"] = len(dropped)


def pytest_terminal_summary(terminalreporter, config):
    modules, tests = _left_out["modules"], _left_out["tests"]
    if modules or tests:
        why = (f"missing reference packages: {', '.join(MISSING)}" if MISSING
               else "-m excludes them")
        line = f"reference tests left out ({why}): {len(modules)} modules not collected"
        if modules:
            line += f" ({', '.join(sorted(modules))})"
        if tests:
            line += f", {tests} marked tests deselected"
        terminalreporter.write_line(line)
