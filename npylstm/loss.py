"""npylstm.MSELoss: mean squared error that refuses mismatched shapes."""
import numpy as np

from . import functional as F
from .functional.loss import REDUCTIONS
from .module import NO_CACHE, Module, check_real, is_grad_enabled


class MSELoss(Module):
    """loss = reduction((input - target)^2), reduction in "mean" | "sum" | "none".

    Unlike torch, which only warns and broadcasts, input and target must have
    the same shape: comparing (40, 10, 1) inputs with (1, 10, 1) targets is
    exactly how the seed notebook printed a meaningless validation loss.
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def __repr__(self):
        return "MSELoss()" if self.reduction == "mean" else f"MSELoss(reduction={self.reduction!r})"

    def forward(self, input, target):
        """input, target: one shape S -> 0-d array ("mean", "sum") or S ("none")."""
        input = check_real("MSELoss", "input", np.asarray(input))
        target = check_real("MSELoss", "target", np.asarray(target))
        if input.shape != target.shape:
            raise ValueError(f"MSELoss: input and target must have the same shape, got input "
                             f"{input.shape} and target {target.shape}")
        dtype = np.result_type(input, target, np.float32)
        loss, cache = F.mse_forward(input.astype(dtype, copy=False),
                                    target.astype(dtype, copy=False), self.reduction)
        self._cache = cache if is_grad_enabled() else NO_CACHE
        return loss

    def backward(self, grad=None):
        """Gradient with respect to input, shaped like input; grad defaults to 1."""
        cache = self._saved_cache()
        diff = cache[0]
        expected = diff.shape if self.reduction == "none" else ()
        grad = np.ones(expected, diff.dtype) if grad is None else np.asarray(grad, dtype=diff.dtype)
        if grad.shape != expected:
            raise ValueError(f"MSELoss.backward: expected grad of shape {expected}, got {grad.shape}")
        return F.mse_backward(grad, cache)
