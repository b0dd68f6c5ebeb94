"""Mean squared error, forward and backward."""
import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def mse_forward(input, target, reduction="mean"):
    """Squared error (input - target)^2, reduced.

    Inputs:
    - input, target: arrays of one and the same shape S (the caller checks it)
    - reduction: "mean" (a scalar, the average), "sum" (a scalar) or "none" (S)

    Returns:
    - loss: 0-d array for "mean" and "sum", shape S for "none"
    - cache: for mse_backward
    """
    diff = input - target
    loss = diff * diff
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return np.asarray(loss), (diff, reduction)


def mse_backward(grad, cache):
    """d loss / d input = 2 (input - target) * grad, divided by the count for "mean".

    Inputs:
    - grad: upstream gradient, a scalar for "mean"/"sum", shape S for "none"
    - cache: from mse_forward

    Returns:
    - grad_input: shape S
    """
    diff, reduction = cache
    scale = 2 / diff.size if reduction == "mean" else 2
    return diff * (scale * np.asarray(grad, diff.dtype))
