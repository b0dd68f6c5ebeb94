"""npylstm.LSTM: a multi-layer LSTM with every option of torch.nn.LSTM.

The module owns the parameters (torch's names, shapes and initialisation),
checks shapes, sorts variable-length batches, applies dropout between layers
and runs ``functional.lstm_layer_forward`` / ``lstm_layer_backward`` for every
layer and direction.

Shapes: T steps, N batch, I input size, H hidden size, P proj size,
Hout = P or H, D = 2 if bidirectional else 1, L = num_layers.
"""
import numpy as np

from . import functional as F
from .module import Module, Parameter, check_dtype, check_shape, check_size, uniform


class LSTM(Module):
    """torch.nn.LSTM in NumPy, forward and backward.

    Parameters, per layer k and direction suffix ("" or "_reverse"), in
    torch's order: weight_ih_l{k} (4H, I or D*Hout), weight_hh_l{k} (4H, Hout),
    bias_ih_l{k} (4H,), bias_hh_l{k} (4H,) when ``bias``, and weight_hr_l{k}
    (P, H) when ``proj_size > 0``. All start as U(-1/sqrt(H), 1/sqrt(H)).

    ``rng`` (None, an int seed or a np.random.Generator) draws the initial
    values and the dropout masks.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype=np.float32, rng=None):
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.proj_size = check_size("proj_size", proj_size, minimum=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be in [0, hidden_size={hidden_size}), got {proj_size}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = check_dtype(dtype)
        self._rng = np.random.default_rng(rng)

        H, P = self.hidden_size, self.proj_size
        Hout = P or H
        D = 2 if bidirectional else 1
        bound = 1 / np.sqrt(H)
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else D * Hout
            for suffix in ("", "_reverse")[:D]:
                shapes = [("weight_ih", (4 * H, layer_input)), ("weight_hh", (4 * H, Hout))]
                if self.bias:
                    shapes += [("bias_ih", (4 * H,)), ("bias_hh", (4 * H,))]
                if P:
                    shapes += [("weight_hr", (P, H))]
                for name, shape in shapes:
                    setattr(self, f"{name}_l{k}{suffix}",
                            Parameter(uniform(self._rng, bound, shape, self.dtype)))
        self._workspaces = [{} for _ in range(self.num_layers * D)]
        self._cache = None

    def __repr__(self):
        extra = "".join(f", {k}={v}" for k, v, default in [
            ("num_layers", self.num_layers, 1), ("bias", self.bias, True),
            ("batch_first", self.batch_first, False), ("dropout", self.dropout, 0.0),
            ("bidirectional", self.bidirectional, False), ("proj_size", self.proj_size, 0)]
            if v != default)
        return f"LSTM({self.input_size}, {self.hidden_size}{extra})"

    @property
    def _D(self):
        return 2 if self.bidirectional else 1

    @property
    def _Hout(self):
        return self.proj_size or self.hidden_size

    def _weights(self, k, d):
        """The arrays of layer k, direction d, as keyword arguments of the layer functions."""
        suffix = f"_l{k}" + ("_reverse" if d else "")
        get = lambda name: getattr(self, name + suffix).data if hasattr(self, name + suffix) else None
        return dict(weight_ih=get("weight_ih"), weight_hh=get("weight_hh"), bias_ih=get("bias_ih"),
                    bias_hh=get("bias_hh"), weight_hr=get("weight_hr"))

    def _state_shapes(self, N, unbatched):
        DL, Hout, H = self._D * self.num_layers, self._Hout, self.hidden_size
        if unbatched:
            return (DL, Hout), (DL, H)
        return (DL, N, Hout), (DL, N, H)

    def _check_lengths(self, lengths, T, N):
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or lengths.shape[0] != N:
            raise ValueError(f"LSTM: expected lengths of shape ({N},), one per batch element, "
                             f"got {lengths.shape}")
        if lengths.dtype.kind not in "iu":
            if lengths.dtype.kind != "f" or not np.all(np.isfinite(lengths)) \
                    or not np.all(lengths == np.round(lengths)):
                raise ValueError(f"LSTM: lengths must be integers, got {lengths.tolist()}")
        lengths = lengths.astype(np.int64)
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"LSTM: lengths must be between 1 and T={T}, got {lengths.tolist()}")
        return lengths

    def forward(self, input, hx=None, lengths=None):
        """Run the LSTM.

        Inputs:
        - input: (T, N, I), or (N, T, I) with batch_first, or (T, I) unbatched
        - hx: None (zeros) or (h_0, c_0): h_0 (D*L, N, Hout), c_0 (D*L, N, H),
          without the N axis when unbatched
        - lengths: None, or (N,) integers in 1..T: sequence b runs over its
          first lengths[b] steps only (torch's packed-sequence semantics)

        Returns:
        - output: (T, N, D*Hout) ((N, T, D*Hout) with batch_first), the last
          layer's hidden state at every step, zero past each length
        - (h_n, c_n): (D*L, N, Hout), (D*L, N, H), each sequence's final state
        """
        x = np.asarray(input, dtype=self.dtype)
        I = self.input_size
        if x.ndim == 2:
            check_shape("LSTM", "unbatched input", x, ("T", I))
        else:
            check_shape("LSTM", "input", x, ("N", "T", I) if self.batch_first else ("T", "N", I))
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, N = x.shape[:2]
        if T == 0 or N == 0:
            raise ValueError(f"LSTM: input must have at least one step and one sequence, got {np.shape(input)}")

        h_shape, c_shape = self._state_shapes(N, unbatched)
        if hx is None:
            h0, c0 = np.zeros(h_shape, self.dtype), np.zeros(c_shape, self.dtype)
        else:
            h0 = check_shape("LSTM", "h_0", np.asarray(hx[0], dtype=self.dtype), h_shape)
            c0 = check_shape("LSTM", "c_0", np.asarray(hx[1], dtype=self.dtype), c_shape)
        if unbatched:
            h0, c0 = h0[:, None, :], c0[:, None, :]                # (D*L, 1, Hout), (D*L, 1, H)

        order = batch_sizes = None
        if lengths is not None:
            lengths = self._check_lengths(lengths, T, N)
            order = np.argsort(-lengths, kind="stable")            # longest first, as torch packs
            batch_sizes = np.count_nonzero(lengths[None, :] > np.arange(T)[:, None], axis=1)
            x, h0, c0 = x[:, order], h0[:, order], c0[:, order]

        D, L, Hout = self._D, self.num_layers, self._Hout
        h_n = np.empty((D * L,) + h0.shape[1:], self.dtype)
        c_n = np.empty((D * L,) + c0.shape[1:], self.dtype)
        caches, masks = [], []
        layer_input = x
        for k in range(L):
            # Both directions write straight into their half of one (T, N, D*Hout)
            # array, instead of concatenating two (T, N, Hout) outputs afterwards.
            layer_output = np.empty((T, N, D * Hout), self.dtype) if D > 1 else None
            for d in range(D):
                j = k * D + d
                out, h_n[j], c_n[j], cache = F.lstm_layer_forward(
                    layer_input, h0[j], c0[j], **self._weights(k, d), reverse=bool(d),
                    batch_sizes=batch_sizes, workspace=self._workspaces[j],
                    out=None if D == 1 else layer_output[:, :, d * Hout:(d + 1) * Hout])
                caches.append(cache)
            if D == 1:
                layer_output = out                                  # (T, N, Hout)
            mask = None
            if k < L - 1 and self.training and self.dropout > 0:
                mask = self._dropout_mask(layer_output.shape)
                layer_output = layer_output * mask
            masks.append(mask)
            layer_input = layer_output

        output = layer_input
        if order is not None:
            inverse = np.argsort(order)
            output, h_n, c_n = output[:, inverse], h_n[:, inverse], c_n[:, inverse]
        self._cache = dict(caches=caches, masks=masks, order=order, unbatched=unbatched,
                           T=T, N=N, h_shape=h_shape, c_shape=c_shape)
        if unbatched:
            return output[:, 0], (h_n[:, 0], c_n[:, 0])
        if self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, (h_n, c_n)

    def _dropout_mask(self, shape):
        """Inverted dropout: keep with probability 1 - p and scale by 1 / (1 - p)."""
        p = self.dropout
        if p >= 1:
            return np.zeros(shape, self.dtype)
        keep = self._rng.random(shape) >= p
        return keep.astype(self.dtype) / self.dtype.type(1 - p)

    def backward(self, grad_output, grad_hx=None):
        """Backpropagate through the most recent forward.

        Inputs:
        - grad_output: shaped like output, or None when the loss does not use
          the output (only h_n / c_n), which is the same as zeros and cheaper
        - grad_hx: None or (grad_h_n, grad_c_n), shaped like (h_n, c_n)

        Returns:
        - grad_input: shaped like input
        - (grad_h0, grad_c0): shaped like h_0 and c_0
        Parameter gradients are added to each ``p.grad``.
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("LSTM.backward called before forward")
        T, N, D, L, Hout = cache["T"], cache["N"], self._D, self.num_layers, self._Hout
        unbatched, order = cache["unbatched"], cache["order"]
        if unbatched:
            out_shape = (T, D * Hout)
        else:
            out_shape = (N, T, D * Hout) if self.batch_first else (T, N, D * Hout)
        g = None
        if grad_output is not None:
            g = check_shape("LSTM.backward", "grad_output",
                            np.asarray(grad_output, dtype=self.dtype), out_shape)
            if unbatched:
                g = g[:, None, :]
            elif self.batch_first:
                g = g.transpose(1, 0, 2)
        grad_h_n = grad_c_n = None
        if grad_hx is not None:
            grad_h_n = check_shape("LSTM.backward", "grad_h_n",
                                   np.asarray(grad_hx[0], dtype=self.dtype), cache["h_shape"])
            grad_c_n = check_shape("LSTM.backward", "grad_c_n",
                                   np.asarray(grad_hx[1], dtype=self.dtype), cache["c_shape"])
            if unbatched:
                grad_h_n, grad_c_n = grad_h_n[:, None, :], grad_c_n[:, None, :]
        if order is not None:
            if g is not None:
                g = g[:, order]
            if grad_hx is not None:
                grad_h_n, grad_c_n = grad_h_n[:, order], grad_c_n[:, order]

        grad_h0 = np.empty((D * L, N, Hout), self.dtype)
        grad_c0 = np.empty((D * L, N, self.hidden_size), self.dtype)
        grad_layer_output = g                                       # (T, N, D*Hout)
        for k in reversed(range(L)):
            grad_layer_input = None
            for d in range(D):
                j = k * D + d
                grad_x, grad_h0[j], grad_c0[j], grads = F.lstm_layer_backward(
                    None if grad_layer_output is None
                    else grad_layer_output[:, :, d * Hout:(d + 1) * Hout],
                    None if grad_h_n is None else grad_h_n[j],
                    None if grad_c_n is None else grad_c_n[j],
                    cache["caches"][j], workspace=self._workspaces[j])
                if grad_layer_input is None:
                    grad_layer_input = grad_x
                else:
                    grad_layer_input += grad_x                      # grad_x is a fresh array
                suffix = f"_l{k}" + ("_reverse" if d else "")
                for name, grad in grads.items():
                    getattr(self, name + suffix).grad += grad
            if k > 0 and cache["masks"][k - 1] is not None:
                grad_layer_input = grad_layer_input * cache["masks"][k - 1]
            grad_layer_output = grad_layer_input

        grad_input = grad_layer_output                              # (T, N, I)
        if order is not None:
            inverse = np.argsort(order)
            grad_input, grad_h0, grad_c0 = grad_input[:, inverse], grad_h0[:, inverse], grad_c0[:, inverse]
        if unbatched:
            return grad_input[:, 0], (grad_h0[:, 0], grad_c0[:, 0])
        if self.batch_first:
            grad_input = grad_input.transpose(1, 0, 2)
        return grad_input, (grad_h0, grad_c0)
