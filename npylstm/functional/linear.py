"""Affine map y = x W^T + b, forward and backward.

Shapes: (..., F_in) -> (..., F_out); W is (F_out, F_in) as in torch.nn.Linear.
"""
import numpy as np


def linear_forward(x, weight, bias=None):
    """y = x W^T + b.

    Inputs:
    - x: (..., F_in)
    - weight: (F_out, F_in)
    - bias: (F_out,) or None

    Returns:
    - y: (..., F_out)
    - cache: for linear_backward
    """
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y, (x, weight, bias is not None)


def linear_backward(grad_y, cache):
    """Gradients of y = x W^T + b: dx = dy W, dW = dy^T x, db = sum dy.

    Inputs:
    - grad_y: (..., F_out)
    - cache: from linear_forward

    Returns:
    - grad_x: (..., F_in)
    - grads: dict with "weight" (F_out, F_in) and, with a bias, "bias" (F_out,)
    """
    x, weight, has_bias = cache
    grad_x = grad_y @ weight
    grad_y_2d = grad_y.reshape(-1, weight.shape[0])               # (M, F_out), M = prod(...)
    grads = {"weight": grad_y_2d.T @ x.reshape(-1, weight.shape[1])}
    if has_bias:
        grads["bias"] = grad_y_2d.sum(axis=0)
    return grad_x, grads
