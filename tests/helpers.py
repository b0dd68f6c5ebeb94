"""Shared test helpers: comparisons that name the tensor, and torch twins of npylstm modules.

Importing this module imports torch; only tests import it.
"""
import numpy as np
import torch


def rel_error(mine, ref):
    """Normwise relative error max|mine - ref| / max|ref| (absolute when ref is all zero)."""
    mine = np.asarray(mine, dtype=np.float64)
    ref = np.asarray(ref.detach().numpy() if isinstance(ref, torch.Tensor) else ref, dtype=np.float64)
    assert mine.shape == ref.shape, f"shape: mine {mine.shape} vs torch {ref.shape}"
    scale = np.max(np.abs(ref), initial=0.0)
    err = np.max(np.abs(mine - ref), initial=0.0)
    return err / scale if scale > 0 else err


def assert_close(name, mine, ref, tol=1e-9):
    """Fail with a message that names the tensor when the relative error exceeds tol."""
    err = rel_error(mine, ref)
    assert err <= tol, f"{name}: mine vs torch differ, relative error {err:.3e} > {tol:.1e}"


def randomize(module, rng, scale=0.5):
    """Overwrite every parameter with distinct random values (biases non-zero and b_ih != b_hh)."""
    for p in module.parameters():
        p.data[...] = rng.uniform(-scale, scale, p.shape)


def torch_twin(module, torch_module):
    """Copy module's parameters into torch_module (same names) and return it in float64."""
    torch_module = torch_module.double()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module
