"""npylstm.Linear: y = x W^T + b, like torch.nn.Linear."""
import numpy as np

from . import functional as F
from .module import (NO_CACHE, Module, Parameter, as_real, check_dtype, check_shape, check_size,
                     is_grad_enabled, uniform)


class Linear(Module):
    """Parameters weight (out_features, in_features) and bias (out_features,),
    both initialised U(-1/sqrt(in_features), 1/sqrt(in_features)) as torch does
    (its kaiming_uniform_ with a = sqrt(5) comes to that bound)."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = check_size("in_features", in_features)
        self.out_features = check_size("out_features", out_features)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(rng)
        bound = 1 / np.sqrt(in_features)
        self.weight = Parameter(uniform(rng, bound, (out_features, in_features), self.dtype))
        self.bias = Parameter(uniform(rng, bound, (out_features,), self.dtype)) if bias else None
        self._cache = None

    def __repr__(self):
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None})")

    def forward(self, x):
        """x: (..., in_features) -> y: (..., out_features)."""
        x = as_real("Linear", "input", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input of shape (..., {self.in_features}), "
                             f"got {x.shape}")
        y, cache = F.linear_forward(x, self.weight.data,
                                    None if self.bias is None else self.bias.data)
        self._cache = cache if is_grad_enabled() else NO_CACHE
        return y

    def backward(self, grad_y):
        """grad_y: (..., out_features) -> grad_x: (..., in_features); adds to p.grad."""
        cache = self._saved_cache()
        x = cache[0]
        grad_y = as_real("Linear.backward", "grad_y", grad_y, self.dtype)
        check_shape("Linear.backward", "grad_y", grad_y, x.shape[:-1] + (self.out_features,))
        grad_x, grads = F.linear_backward(grad_y, cache)
        self.weight.grad += grads["weight"]
        if self.bias is not None:
            self.bias.grad += grads["bias"]
        return grad_x
