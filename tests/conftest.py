"""Test-wide setup.

- Subprocesses that run ``python -m npylstm...`` import the npylstm of this
  checkout, installed or not (a git worktree, a fresh clone).
- Keras runs on its torch backend, so no other framework is needed; this must
  be set before anything imports keras.
"""
import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
os.environ.setdefault("KERAS_BACKEND", "torch")
