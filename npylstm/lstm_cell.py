"""npylstm.LSTMCell: one LSTM step as a module, like torch.nn.LSTMCell.

Shapes: N batch, I input size, H hidden size.
"""
import numpy as np

from . import functional as F
from .module import (NO_CACHE, Module, Parameter, as_pair, as_real, check_dtype, check_shape,
                     check_size, is_grad_enabled, uniform)


class LSTMCell(Module):
    """One LSTM step with parameters weight_ih (4H, I), weight_hh (4H, H),
    bias_ih (4H,) and bias_hh (4H,), all initialised U(-1/sqrt(H), 1/sqrt(H)).
    The equations are in ``functional.lstm_cell_forward``."""

    def __init__(self, input_size, hidden_size, bias=True, *, dtype=np.float32, rng=None):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(rng)
        H, bound = self.hidden_size, 1 / np.sqrt(hidden_size)
        self.weight_ih = Parameter(uniform(rng, bound, (4 * H, self.input_size), self.dtype))
        self.weight_hh = Parameter(uniform(rng, bound, (4 * H, H), self.dtype))
        if self.bias:
            self.bias_ih = Parameter(uniform(rng, bound, (4 * H,), self.dtype))
            self.bias_hh = Parameter(uniform(rng, bound, (4 * H,), self.dtype))
        self._cache = None

    def __repr__(self):
        return f"LSTMCell({self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False") + ")"

    def forward(self, input, hx=None):
        """h_1, c_1 = cell(input, hx).

        Inputs:
        - input: (N, I), or (I,) unbatched
        - hx: None (zeros) or (h_0, c_0), each (N, H), or (H,) unbatched

        Returns:
        - h_1, c_1: (N, H), or (H,) unbatched
        """
        x = as_real("LSTMCell", "input", input, self.dtype)
        unbatched = x.ndim == 1
        check_shape("LSTMCell", "input", x, (self.input_size,) if unbatched else ("N", self.input_size))
        x = x[None] if unbatched else x
        N, H = x.shape[0], self.hidden_size
        state_shape = (H,) if unbatched else (N, H)
        if hx is None:
            h0 = c0 = np.zeros((N, H), self.dtype)
        else:
            h0, c0 = as_pair("LSTMCell", hx)
            h0 = check_shape("LSTMCell", "h_0", as_real("LSTMCell", "h_0", h0, self.dtype), state_shape)
            c0 = check_shape("LSTMCell", "c_0", as_real("LSTMCell", "c_0", c0, self.dtype), state_shape)
            h0, c0 = h0.reshape(N, H), c0.reshape(N, H)
        b_ih = self.bias_ih.data if self.bias else None
        b_hh = self.bias_hh.data if self.bias else None
        h1, c1, cache = F.lstm_cell_forward(x, h0, c0, self.weight_ih.data, self.weight_hh.data,
                                            b_ih, b_hh)
        self._cache = (cache, unbatched, N) if is_grad_enabled() else NO_CACHE
        return (h1[0], c1[0]) if unbatched else (h1, c1)

    def backward(self, grad_h1, grad_c1=None):
        """Gradients of the step; parameter gradients are added to ``p.grad``.

        Inputs:
        - grad_h1: shaped like h_1; grad_c1: shaped like c_1, or None (zero)

        Returns:
        - grad_input: shaped like input
        - (grad_h0, grad_c0): shaped like h_0 and c_0
        """
        cache, unbatched, N = self._saved_cache()
        shape = (self.hidden_size,) if unbatched else (N, self.hidden_size)
        grad_h = check_shape("LSTMCell.backward", "grad_h1",
                             as_real("LSTMCell.backward", "grad_h1", grad_h1, self.dtype), shape)
        grad_c = None
        if grad_c1 is not None:
            grad_c = check_shape("LSTMCell.backward", "grad_c1",
                                 as_real("LSTMCell.backward", "grad_c1", grad_c1, self.dtype),
                                 shape).reshape(N, -1)
        grad_x, grad_h0, grad_c0, grads = F.lstm_cell_backward(grad_h.reshape(N, -1), grad_c, cache)
        for name, grad in grads.items():
            getattr(self, name).grad += grad
        if unbatched:
            return grad_x[0], (grad_h0[0], grad_c0[0])
        return grad_x, (grad_h0, grad_c0)
