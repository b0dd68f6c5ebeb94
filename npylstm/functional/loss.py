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


def cross_entropy_forward(logits, target, reduction="mean", ignore_index=-100):
    """Softmax cross-entropy with class-index targets, as torch.nn.functional.cross_entropy.

    With z = logits[n] and m = max_c z_c (subtracted so that exp never overflows:
    log-softmax does not change when a constant is subtracted from every z_c):

        log p_c = (z_c - m) - log sum_k exp(z_k - m)
        loss[n] = -log p_target[n]         (0 where target[n] == ignore_index)

    Inputs:
    - logits: (N, C)
    - target: (N,) integers, each in [0, C) or ignore_index (the caller checks it)
    - reduction: "mean" (over the targets that are not ignored; NaN when all
      are, as torch gives), "sum" or "none" ((N,))

    Returns:
    - loss: 0-d array for "mean" and "sum", (N,) for "none"
    - cache: for cross_entropy_backward
    """
    N = logits.shape[0]
    keep = target != ignore_index                             # (N,) bool
    safe_target = np.where(keep, target, 0)                   # any valid class; masked below
    rows = np.arange(N)
    shifted = logits - logits.max(axis=1, keepdims=True)      # (N, C), every entry <= 0
    target_shifted = shifted[rows, safe_target]               # (N,) z_t - m, read before exp
    np.exp(shifted, out=shifted)                              # in place: exp(z - m), (N, C)
    total = shifted.sum(axis=1)                               # (N,), >= 1: the max gives exp(0)
    loss = np.log(total) - target_shifted
    loss[~keep] = 0
    count = np.count_nonzero(keep)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):   # 0 / 0 = NaN when all are ignored
            out = np.asarray(loss.sum() / logits.dtype.type(count))
    elif reduction == "sum":
        out = np.asarray(loss.sum())
    else:
        out = loss
    return out, (shifted, total, safe_target, keep, count, reduction)


def cross_entropy_backward(grad, cache):
    """d loss / d logits = (softmax(z) - onehot(target)) * grad, per row.

    For "mean" every row is divided by the number of targets that are not
    ignored; ignored rows get 0.

    Inputs:
    - grad: upstream gradient, a scalar for "mean"/"sum", (N,) for "none"
    - cache: from cross_entropy_forward

    Returns:
    - grad_logits: (N, C)
    """
    exp_shifted, total, safe_target, keep, count, reduction = cache
    dtype = exp_shifted.dtype
    grad = np.asarray(grad, dtype)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):   # NaN when all are ignored, as torch
            grad = grad / dtype.type(count)
    scale = np.where(keep, grad, dtype.type(0))               # (N,) upstream per row, 0 if ignored
    grad_logits = exp_shifted * (scale / total)[:, None]      # softmax * scale, one new array
    grad_logits[np.arange(len(keep)), safe_target] -= scale   # minus the one-hot
    return grad_logits
