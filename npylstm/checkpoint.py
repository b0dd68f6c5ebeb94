"""Checkpoints of a training run: one .npz that loads with allow_pickle=False.

Entries (strings are 0-d unicode arrays, so no pickle is needed):

    format            "npylstm-checkpoint"
    format_version    1
    config            the run's TrainConfig as JSON
    epoch             epochs done
    losses            (epoch,) training loss of every epoch so far
    model/<name>      the model's state_dict, torch's names
    optim/param_groups   the optimiser's hyper-parameters as JSON
    optim/<i>/<key>   the optimiser's state of parameter i ("step", "exp_avg", ...)

Files are written atomically (``files.atomic_write``): into a temporary file in
the same folder, then ``os.replace``d over the target, so a crash never leaves
half a checkpoint.
Every problem on reading raises CheckpointError, whose message names the file.
"""
import json
import os
import zipfile
import zlib

import numpy as np

from .files import atomic_write

FORMAT = "npylstm-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, foreign or does not fit the run."""

    def __init__(self, path, problem):
        super().__init__(f"checkpoint {os.fspath(path)!r}: {problem}")
        self.path, self.problem = path, problem


def save_checkpoint(path, model, optimizer, epoch, losses, config):
    """Write model and optimiser state, the epoch count, the losses and the config (a dict)."""
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "config": np.array(json.dumps(config)),
        "epoch": np.array(epoch),
        "losses": np.asarray(losses, dtype=np.float64),
    }
    for name, value in model.state_dict().items():
        arrays["model/" + name] = value
    optim_state = optimizer.state_dict()
    group = optim_state["param_groups"][0]
    arrays["optim/param_groups"] = np.array(json.dumps({k: v for k, v in group.items()}))
    for i, state in optim_state["state"].items():
        for key, value in state.items():
            arrays[f"optim/{i}/{key}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _read_arrays(path):
    if not os.path.exists(path):
        raise CheckpointError(path, "no such file")
    if os.path.isdir(path):
        raise CheckpointError(path, "is a directory, not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise CheckpointError(path, f"cannot be read ({err.strerror})")
    if not magic:
        raise CheckpointError(path, "is empty")
    if magic == b"\x93NUMPY":
        raise CheckpointError(path, "is a single .npy array, not an .npz archive")
    if magic[:4] != b"PK\x03\x04":                                 # every .npz is a zip file
        raise CheckpointError(path, "is not an .npz archive (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise CheckpointError(path, "holds pickled objects, which are not loaded "
                                        "(not an npylstm checkpoint)")
        raise CheckpointError(path, f"not a readable .npz archive ({err})")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
        raise CheckpointError(path, f"not a readable .npz archive, corrupt or truncated "
                                    f"({type(err).__name__}: {err})")


def load_checkpoint(path):
    """Read and check a checkpoint.

    Returns a dict: config (dict), epoch (int), losses (list of float),
    model (state_dict), optimizer (an optimiser state_dict).
    Raises CheckpointError for a missing, corrupt, foreign or incomplete file.
    """
    arrays = _read_arrays(path)
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        raise CheckpointError(path, "not an npylstm checkpoint (no 'format' entry "
                                    f"{FORMAT!r}); the entries are {sorted(arrays)[:6]}")
    version = int(arrays.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {version}, but this npylstm reads "
                                    f"version {FORMAT_VERSION}")
    for key in ("config", "epoch", "losses", "optim/param_groups"):
        if key not in arrays:
            raise CheckpointError(path, f"incomplete, the entry {key!r} is missing")
    try:
        config = json.loads(str(arrays["config"]))
        group = json.loads(str(arrays["optim/param_groups"]))
        if not isinstance(config, dict) or not isinstance(group, dict):
            raise ValueError("config and optim/param_groups must be JSON objects")
        epoch = int(arrays["epoch"])
        losses = [float(v) for v in np.ravel(arrays["losses"])]
        state = {}
        for key, value in arrays.items():
            parts = key.split("/")
            if parts[0] == "optim" and len(parts) == 3:
                state.setdefault(int(parts[1]), {})[parts[2]] = \
                    float(value) if parts[2] == "step" else value
    except (ValueError, TypeError) as err:           # json.JSONDecodeError is a ValueError
        raise CheckpointError(path, f"has a malformed entry ({err})")
    if len(losses) != epoch:
        raise CheckpointError(path, f"holds {len(losses)} losses for {epoch} epochs")
    model = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer = {"state": state, "param_groups": [group]}
    return dict(config=config, epoch=epoch, losses=losses, model=model, optimizer=optimizer)
