"""Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_."""
import math

import numpy as np

from .module import Parameter


def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale every ``p.grad`` in place so that their total norm is at most max_norm.

    The total norm is the norm of the vector of per-parameter norms (the same
    as the norm of all gradients concatenated). As in torch, the gradients
    are multiplied by min(1, max_norm / (total + 1e-6)).

    Inputs:
    - params: a Parameter or an iterable of Parameters
    - max_norm: float
    - norm_type: p of the p-norm; float("inf") (or "inf") for the max norm
    - error_if_nonfinite: raise RuntimeError when the total norm is NaN or inf

    Returns:
    - the total norm before clipping, as a float
    """
    params = [params] if isinstance(params, Parameter) else list(params)
    if not params:
        return 0.0
    norm_type = float(norm_type)
    grads = [p.grad for p in params]
    if math.isinf(norm_type):
        norms = [np.max(np.abs(g)) if g.size else 0.0 for g in grads]
    else:
        norms = [np.linalg.norm(g.ravel(), ord=norm_type) for g in grads]
    total = float(np.linalg.norm(np.asarray(norms, dtype=np.float64), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, "
                           "so it cannot be clipped")
    coef = min(float(max_norm) / (total + 1e-6), 1.0)
    for g in grads:
        g *= g.dtype.type(coef)
    return total
