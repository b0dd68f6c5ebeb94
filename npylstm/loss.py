"""npylstm.MSELoss (mean squared error that refuses mismatched shapes) and
npylstm.CrossEntropyLoss (softmax cross-entropy with class-index targets)."""
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


class CrossEntropyLoss(Module):
    """torch.nn.CrossEntropyLoss with class-index targets: softmax cross-entropy.

    loss[n] = logsumexp(logits[n]) - logits[n, target[n]], computed with the
    row maximum subtracted, so logits of +-1e4 give finite values; targets equal
    to ``ignore_index`` add nothing and are not counted by "mean".
    No class weights or label smoothing.
    """

    def __init__(self, reduction="mean", ignore_index=-100):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise ValueError(f"ignore_index must be an integer, got {ignore_index!r}")
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self._cache = None

    def __repr__(self):
        args = [f"reduction={self.reduction!r}"] if self.reduction != "mean" else []
        args += [f"ignore_index={self.ignore_index}"] if self.ignore_index != -100 else []
        return f"CrossEntropyLoss({', '.join(args)})"

    def forward(self, logits, target):
        """logits (N, C) or (C,); target (N,) or () integers in [0, C) or ignore_index
        -> 0-d array ("mean", "sum"), or (N,) / () ("none")."""
        logits = check_real("CrossEntropyLoss", "logits", np.asarray(logits))
        target = np.asarray(target)
        if logits.ndim not in (1, 2):
            raise ValueError(f"CrossEntropyLoss: expected logits of shape (N, C) or (C,), "
                             f"got {logits.shape}")
        if logits.shape[-1] == 0:
            raise ValueError(f"CrossEntropyLoss: expected at least one class, got logits of shape "
                             f"{logits.shape}")
        if target.shape != logits.shape[:-1]:
            want = "()" if logits.ndim == 1 else f"({logits.shape[0]},)"
            raise ValueError(f"CrossEntropyLoss: expected target of shape {want} for logits "
                             f"of shape {logits.shape}, got {target.shape}")
        if target.dtype.kind not in "iu":
            raise ValueError(f"CrossEntropyLoss: expected integer targets (class indices), "
                             f"got dtype {target.dtype}")
        C = logits.shape[-1]
        bad = (target != self.ignore_index) & ((target < 0) | (target >= C))
        if bad.any():
            raise ValueError(f"CrossEntropyLoss: targets must be in [0, {C}) or "
                             f"ignore_index={self.ignore_index}, got {target[bad].reshape(-1)[:5].tolist()}")
        dtype = np.result_type(logits, np.float32)
        unbatched = logits.ndim == 1
        loss, cache = F.cross_entropy_forward(
            logits.astype(dtype, copy=False).reshape(-1, C), target.astype(np.int64).reshape(-1),
            self.reduction, self.ignore_index)
        self._cache = (cache, unbatched) if is_grad_enabled() else NO_CACHE
        return loss.reshape(()) if unbatched else loss

    def backward(self, grad=None):
        """Gradient with respect to logits, shaped like logits; grad defaults to 1."""
        cache, unbatched = self._saved_cache()
        exp_shifted = cache[0]
        N = exp_shifted.shape[0]
        expected = (() if unbatched else (N,)) if self.reduction == "none" else ()
        grad = np.ones(expected, exp_shifted.dtype) if grad is None \
            else np.asarray(grad, dtype=exp_shifted.dtype)
        if grad.shape != expected:
            raise ValueError(f"CrossEntropyLoss.backward: expected grad of shape {expected}, "
                             f"got {grad.shape}")
        grad_logits = F.cross_entropy_backward(grad.reshape(-1) if self.reduction == "none" else grad,
                                               cache)
        return grad_logits[0] if unbatched else grad_logits
