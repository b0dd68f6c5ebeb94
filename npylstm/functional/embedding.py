"""Embedding lookup, forward and backward.

Shapes: ids of any shape S -> (*S, E); the table W is (V, E) as in torch.nn.Embedding.
"""
import numpy as np


def embedding_forward(ids, weight):
    """out = W[ids]: row ids[s] of the table for every position s.

    Inputs:
    - ids: integer array of shape S, every entry in [0, V) (the caller checks it)
    - weight: (V, E)

    Returns:
    - out: (*S, E), a new array
    - cache: for embedding_backward
    """
    return weight[ids], (ids, weight.shape)


def embedding_backward(grad_out, cache):
    """d loss / d W: the scatter-add dW[v] = sum of grad_out[s] over the positions s with ids[s] = v.

    A row looked up twice gets both gradients. ``W[ids] += g`` would keep only
    one of them (fancy-index assignment does not accumulate), and np.add.at,
    which does, is slow. So the rows of grad_out are sorted by id and every
    run of equal ids is summed with one np.add.reduceat: the same sums, in
    O(M log M + M E) for M = prod(S) lookups.

    Inputs:
    - grad_out: (*S, E)
    - cache: from embedding_forward

    Returns:
    - grad_weight: (V, E), zero in the rows no id looked up
    """
    ids, (V, E) = cache
    ids = ids.reshape(-1)                                      # (M,)
    grad_rows = grad_out.reshape(-1, E)                        # (M, E)
    grad_weight = np.zeros((V, E), grad_out.dtype)
    if ids.size == 0:
        return grad_weight
    order = np.argsort(ids, kind="stable")                     # equal ids keep their order
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])   # first of each run
    grad_weight[sorted_ids[starts]] = np.add.reduceat(grad_rows[order], starts, axis=0)
    return grad_weight
