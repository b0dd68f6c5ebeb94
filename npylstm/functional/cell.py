"""One LSTM time step, forward and backward, in the plain form of the equations.

This is the readable reference of the math (docs/lstm.md, sections 1 and 3;
the variants, peephole, input_forget, clip and ablate, section 11).
The sequence-level code in ``layer.py`` computes exactly the same equations
with the performance tricks applied; ``npylstm.LSTMCell`` calls these two
functions directly.

Shapes: N batch, I input size, H hidden size, P projection size
(Hout = P when there is a projection, else H).
"""
from collections import namedtuple

import numpy as np

from .activations import sigmoid, sigmoid_grad, tanh_grad
from .variant import check_variant


CellCache = namedtuple("CellCache", [
    "x", "h_prev", "c_prev",            # the step's inputs
    "i", "f", "g", "o",                 # the gates, (N, H) each (an ablated gate: ones)
    "tanh_c", "h_cell",                 # act(c) and o * act(c), (N, H)
    "weight_ih", "weight_hh", "has_bias", "weight_hr",
    "variant",                          # dict: peephole, input_forget, keep (clip), ablate, c
])
CellCache.__doc__ = """What lstm_cell_forward keeps for lstm_cell_backward, by name (a tuple too)."""


def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih=None,
                      bias_hh=None, weight_hr=None, *, peephole=None, input_forget=False,
                      clip=None, ablate=()):
    r"""One LSTM step, with torch's gate order (i, f, g, o) and names.

    Equations (docs/lstm.md, eq. 1-7):

        z   = x W_ih^T + b_ih + h_prev W_hh^T + b_hh     (N, 4H), split into
              z_i, z_f, z_g, z_o, each (N, H)
        i   = sigmoid(z_i)                               input gate
        f   = sigmoid(z_f)                               forget gate
        g   = tanh(z_g)                                  candidate cell
        o   = sigmoid(z_o)                               output gate
        c   = f * c_prev + i * g                         new cell state
        h   = o * tanh(c)                                new hidden state
        h   = (o * tanh(c)) W_hr^T                       instead, with a projection (eq. 20)

    The variants (docs/lstm.md, eq. 34-39) change these lines only:

        peephole:     z_i += w_ci * c_prev,  z_f += w_cf * c_prev,  z_o += w_co * c
        clip:         z_i, z_f, z_g, z_o clipped to [-clip, clip] (after the peepholes)
        input_forget: f = 1 - i
        ablate:       "input_gate" i = 1, "forget_gate" f = 1, "output_gate" o = 1,
                      "input_activation" g = z_g, "output_activation" h = o * c

    Inputs:
    - x: (N, I)
    - h_prev: (N, Hout)
    - c_prev: (N, H)
    - weight_ih: (4H, I)
    - weight_hh: (4H, Hout)
    - bias_ih, bias_hh: (4H,) or None
    - weight_hr: (P, H) or None
    - peephole: None, or (w_ci, w_cf, w_co), each (H,)
    - input_forget: bool; clip: None or a number > 0; ablate: tuple of names
      (npylstm.functional.variant.ABLATIONS)

    Returns:
    - h: (N, Hout)
    - c: (N, H)
    - cache: a CellCache, what lstm_cell_backward needs (and the gates, by name)
    """
    input_forget, clip, ablate = check_variant(input_forget, clip, ablate)
    H = weight_hh.shape[0] // 4
    z = x @ weight_ih.T + h_prev @ weight_hh.T                   # (N, 4H)
    if bias_ih is not None:
        z = z + bias_ih + bias_hh
    z_i, z_f, z_g, z_o = z[:, 0 * H:1 * H], z[:, 1 * H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:4 * H]
    if peephole is not None:
        w_ci, w_cf, w_co = peephole
        z_i = z_i + w_ci * c_prev                                # peephole into the input gate
        z_f = z_f + w_cf * c_prev                                # peephole into the forget gate
    keep = {}                                                    # where clip let z through
    if clip is not None:
        keep["i"], keep["f"], keep["g"] = (np.abs(z_i) <= clip), (np.abs(z_f) <= clip), (np.abs(z_g) <= clip)
        z_i, z_f, z_g = np.clip(z_i, -clip, clip), np.clip(z_f, -clip, clip), np.clip(z_g, -clip, clip)
    one = np.ones_like(c_prev)
    i = one if "input_gate" in ablate else sigmoid(z_i)
    if input_forget:
        f = 1 - i                                                # CIFG: forget what is written
    else:
        f = one if "forget_gate" in ablate else sigmoid(z_f)
    g = z_g if "input_activation" in ablate else np.tanh(z_g)
    c = f * c_prev + i * g
    if peephole is not None:
        z_o = z_o + w_co * c                                     # the output gate sees the new cell
    if clip is not None:
        keep["o"] = np.abs(z_o) <= clip
        z_o = np.clip(z_o, -clip, clip)
    o = one if "output_gate" in ablate else sigmoid(z_o)
    tanh_c = c if "output_activation" in ablate else np.tanh(c)  # the cell's output activation
    h_cell = o * tanh_c                                          # (N, H)
    h = h_cell if weight_hr is None else h_cell @ weight_hr.T    # (N, Hout)
    variant = dict(peephole=peephole, input_forget=input_forget, keep=keep, ablate=ablate, c=c)
    cache = CellCache(x, h_prev, c_prev, i, f, g, o, tanh_c, h_cell,
                      weight_ih, weight_hh, bias_ih is not None, weight_hr, variant)
    return h, c, cache


def lstm_cell_backward(grad_h, grad_c, cache):
    r"""Backward of one LSTM step (docs/lstm.md, eq. 8-16).

    With dX meaning dLoss/dX:

        dh_cell = dh W_hr        (with a projection; dW_hr = dh^T h_cell; eq. 21)
        do      = dh_cell * tanh(c)
        dc      = dc + dh_cell * o * (1 - tanh(c)^2)     both paths into c
        di      = dc * g
        df      = dc * c_prev
        dg      = dc * i
        dc_prev = dc * f
        dz      = [di * i (1 - i), df * f (1 - f), dg * (1 - g^2), do * o (1 - o)]
        dx      = dz W_ih,    dh_prev = dz W_hh
        dW_ih   = dz^T x,     dW_hh   = dz^T h_prev,     db_ih = db_hh = sum_N dz

    The variants (docs/lstm.md, eq. 40-45): a peephole adds dz_o * w_co to dc
    and dz_i * w_ci + dz_f * w_cf to dc_prev, with dw_ci = sum_N dz_i * c_prev,
    dw_cf = sum_N dz_f * c_prev, dw_co = sum_N dz_o * c; input_forget moves df
    onto i (di -= df, dz_f = 0); clip zeroes dz where z was clipped; an
    ablated gate gets dz = 0; an identity activation has derivative 1.

    Inputs:
    - grad_h: (N, Hout), gradient of the loss with respect to h
    - grad_c: (N, H) or None (zero), gradient with respect to c from later use
    - cache: from lstm_cell_forward

    Returns:
    - grad_x: (N, I)
    - grad_h_prev: (N, Hout)
    - grad_c_prev: (N, H)
    - grads: dict with "weight_ih" (4H, I), "weight_hh" (4H, Hout), and
      "bias_ih", "bias_hh" (4H,) when there is a bias, "weight_hr" (P, H)
      when there is a projection, "weight_ci", "weight_cf", "weight_co" (H,)
      with peepholes
    """
    (x, h_prev, c_prev, i, f, g, o, tanh_c, h_cell,
     weight_ih, weight_hh, has_bias, weight_hr, variant) = cache
    ablate, keep, peephole = variant["ablate"], variant["keep"], variant["peephole"]
    grads = {}
    if weight_hr is not None:
        grads["weight_hr"] = grad_h.T @ h_cell                   # (P, H)
        grad_h = grad_h @ weight_hr                              # (N, H)
    grad_o = grad_h * tanh_c
    grad_tanh_c = 1 if "output_activation" in ablate else tanh_grad(tanh_c)
    grad_c = grad_h * o * grad_tanh_c + (0 if grad_c is None else grad_c)
    grad_z_o = grad_o * sigmoid_grad(o) * keep.get("o", 1)       # zero for an ablated gate (o = 1)
    if peephole is not None:
        grad_c = grad_c + grad_z_o * peephole[2]                 # through z_o = ... + w_co * c
    grad_i = grad_c * g
    grad_f = grad_c * c_prev
    grad_g = grad_c * i
    grad_c_prev = grad_c * f
    if variant["input_forget"]:
        grad_i = grad_i - grad_f                                 # f = 1 - i
        grad_f = np.zeros_like(grad_f)
    grad_z_i = grad_i * sigmoid_grad(i) * keep.get("i", 1)
    grad_z_f = grad_f * sigmoid_grad(f) * keep.get("f", 1)
    grad_tanh_g = 1 if "input_activation" in ablate else tanh_grad(g)
    grad_z_g = grad_g * grad_tanh_g * keep.get("g", 1)
    if peephole is not None:
        grad_c_prev = grad_c_prev + grad_z_i * peephole[0] + grad_z_f * peephole[1]
        grads["weight_ci"] = (grad_z_i * c_prev).sum(axis=0)
        grads["weight_cf"] = (grad_z_f * c_prev).sum(axis=0)
        grads["weight_co"] = (grad_z_o * variant["c"]).sum(axis=0)
    grad_z = np.concatenate([grad_z_i, grad_z_f, grad_z_g, grad_z_o], axis=1)  # (N, 4H)
    grad_x = grad_z @ weight_ih
    grad_h_prev = grad_z @ weight_hh
    grads["weight_ih"] = grad_z.T @ x
    grads["weight_hh"] = grad_z.T @ h_prev
    if has_bias:
        grads["bias_ih"] = grad_z.sum(axis=0)
        grads["bias_hh"] = grads["bias_ih"].copy()
    return grad_x, grad_h_prev, grad_c_prev, grads
