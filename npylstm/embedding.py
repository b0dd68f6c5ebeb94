"""npylstm.Embedding: a lookup table of learned vectors, like torch.nn.Embedding."""
import numpy as np

from . import functional as F
from .module import NO_CACHE, Module, Parameter, as_real, check_dtype, check_shape, check_size, is_grad_enabled


def check_ids(where, ids, size, name="ids"):
    """``ids`` as an int64 array with every entry in [0, size); ValueError for
    anything else (floats and bools included, even when they hold whole numbers)."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected integer {name}, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        bad = ids[(ids < 0) | (ids >= size)].reshape(-1)[:5].tolist()
        raise ValueError(f"{where}: {name} must be in [0, {size}), got {bad}")
    return ids.astype(np.int64, copy=False)


class Embedding(Module):
    """Parameter weight (num_embeddings, embedding_dim), initialised N(0, 1) as torch does.

    ``out = emb(ids)`` is ``weight[ids]``; backward adds the scatter-add of the
    output gradient into weight.grad (docs/lstm.md, "The character model").
    No padding_idx, max_norm or sparse gradients.
    """

    def __init__(self, num_embeddings, embedding_dim, *, dtype=np.float32, rng=None):
        super().__init__()
        self.num_embeddings = check_size("num_embeddings", num_embeddings)
        self.embedding_dim = check_size("embedding_dim", embedding_dim)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(rng)
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)).astype(self.dtype))
        self._cache = None

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"

    def forward(self, ids):
        """ids: integers of any shape S, each in [0, V) -> (*S, E)."""
        ids = check_ids("Embedding", ids, self.num_embeddings)
        out, cache = F.embedding_forward(ids, self.weight.data)
        self._cache = cache if is_grad_enabled() else NO_CACHE
        return out

    def backward(self, grad_out):
        """grad_out: (*S, E) -> None (ids have no gradient); adds into weight.grad."""
        ids, _ = self._saved_cache()
        grad_out = as_real("Embedding.backward", "grad_out", grad_out, self.dtype)
        check_shape("Embedding.backward", "grad_out", grad_out, ids.shape + (self.embedding_dim,))
        self.weight.grad += F.embedding_backward(grad_out, self._cache)
        return None
