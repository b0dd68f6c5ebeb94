"""Elementwise activations and their derivatives, written in terms of the outputs.

The LSTM only ever needs the derivative of an activation at a point where it
already knows the activation's value, so every ``*_grad`` takes the output
``y`` and not the input: sigmoid'(z) = y (1 - y), tanh'(z) = 1 - y^2.
"""
import numpy as np


def sigmoid(x, out=None):
    """Logistic sigmoid 1 / (1 + exp(-x)), computed as 0.5 * tanh(0.5 x) + 0.5.

    The identity sigmoid(x) = (1 + tanh(x / 2)) / 2 is exact in real numbers.
    tanh saturates to +-1 instead of overflowing, so there is no overflow
    warning for any finite input (exp(-x) would overflow for x < -88 in
    float32), and it is one SIMD ufunc pass instead of exp, add and divide.

    Inputs:
    - x: array of any shape
    - out: optional array of the same shape to write into (may be ``x``)

    Returns:
    - y: array of the shape of x, values in [0, 1]
    """
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def sigmoid_grad(y):
    """d sigmoid / dz at the point where sigmoid(z) = y: y * (1 - y)."""
    return y * (1 - y)


def tanh_grad(y):
    """d tanh / dz at the point where tanh(z) = y: 1 - y^2."""
    return 1 - y * y
