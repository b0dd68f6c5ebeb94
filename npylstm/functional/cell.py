"""One LSTM time step, forward and backward, in the plain form of the equations.

This is the readable reference of the math (docs/lstm.md, sections 1 and 3).
The sequence-level code in ``layer.py`` computes exactly the same equations
with the performance tricks applied; ``npylstm.LSTMCell`` calls these two
functions directly.

Shapes: N batch, I input size, H hidden size, P projection size
(Hout = P when there is a projection, else H).
"""
import numpy as np

from .activations import sigmoid, sigmoid_grad, tanh_grad


def lstm_cell_forward(x, h_prev, c_prev, weight_ih, weight_hh, bias_ih=None,
                      bias_hh=None, weight_hr=None):
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

    Inputs:
    - x: (N, I)
    - h_prev: (N, Hout)
    - c_prev: (N, H)
    - weight_ih: (4H, I)
    - weight_hh: (4H, Hout)
    - bias_ih, bias_hh: (4H,) or None
    - weight_hr: (P, H) or None

    Returns:
    - h: (N, Hout)
    - c: (N, H)
    - cache: what lstm_cell_backward needs
    """
    H = weight_hh.shape[0] // 4
    z = x @ weight_ih.T + h_prev @ weight_hh.T                   # (N, 4H)
    if bias_ih is not None:
        z = z + bias_ih + bias_hh
    i = sigmoid(z[:, 0 * H:1 * H])
    f = sigmoid(z[:, 1 * H:2 * H])
    g = np.tanh(z[:, 2 * H:3 * H])
    o = sigmoid(z[:, 3 * H:4 * H])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h_cell = o * tanh_c                                          # (N, H)
    h = h_cell if weight_hr is None else h_cell @ weight_hr.T    # (N, Hout)
    cache = (x, h_prev, c_prev, i, f, g, o, tanh_c, h_cell,
             weight_ih, weight_hh, bias_ih is not None, weight_hr)
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
      when there is a projection
    """
    (x, h_prev, c_prev, i, f, g, o, tanh_c, h_cell,
     weight_ih, weight_hh, has_bias, weight_hr) = cache
    grads = {}
    if weight_hr is not None:
        grads["weight_hr"] = grad_h.T @ h_cell                   # (P, H)
        grad_h = grad_h @ weight_hr                              # (N, H)
    grad_o = grad_h * tanh_c
    grad_c = grad_h * o * tanh_grad(tanh_c) + (0 if grad_c is None else grad_c)
    grad_i = grad_c * g
    grad_f = grad_c * c_prev
    grad_g = grad_c * i
    grad_c_prev = grad_c * f
    grad_z = np.concatenate([grad_i * sigmoid_grad(i),
                             grad_f * sigmoid_grad(f),
                             grad_g * tanh_grad(g),
                             grad_o * sigmoid_grad(o)], axis=1)  # (N, 4H)
    grad_x = grad_z @ weight_ih
    grad_h_prev = grad_z @ weight_hh
    grads["weight_ih"] = grad_z.T @ x
    grads["weight_hh"] = grad_z.T @ h_prev
    if has_bias:
        grads["bias_ih"] = grad_z.sum(axis=0)
        grads["bias_hh"] = grads["bias_ih"].copy()
    return grad_x, grad_h_prev, grad_c_prev, grads
