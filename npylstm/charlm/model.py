"""CharLM: a character-level language model, Embedding -> LSTM -> Linear on every step.

    x = embedding(ids)                      # (T, N) -> (T, N, E)
    output, (h_n, c_n) = lstm(x, hx)        # (T, N, H), time-major
    logits = linear(output)                 # (T, N, V): the next character's scores

Shapes: T steps, N streams, E embedding size, H hidden size, L layers, V vocabulary size.
"""
import numpy as np

from ..embedding import Embedding, check_ids
from ..linear import Linear
from ..lstm import LSTM
from ..module import NO_CACHE, Module, check_dtype, check_size, is_grad_enabled

# The LSTM's variant options that CharLM passes through (docs/lstm.md, section 11).
# Not `bidirectional`: a language model must not see the character it predicts.
LSTM_OPTIONS = ("peephole", "input_forget", "clip", "ablate")


class CharLM(Module):
    """Embedding(V, E) -> LSTM(E, H, L, dropout) -> Linear(H, V) at every step.

    Submodules ``embedding``, ``lstm`` and ``linear``: the state_dict keys are
    those of a torch module with the same three attributes (embedding.weight,
    lstm.weight_ih_l0, ..., linear.weight, linear.bias). All start with torch's
    default initialisation, drawn from one generator made from ``rng``.
    ``dropout`` is the LSTM's, between its layers.
    """

    def __init__(self, vocab_size, hidden_size=256, num_layers=2, embedding_dim=64, dropout=0.0, *,
                 dtype=np.float32, rng=None, **lstm_options):
        super().__init__()
        unknown = sorted(set(lstm_options) - set(LSTM_OPTIONS))
        if unknown:
            raise TypeError(f"CharLM got unexpected keyword argument(s) {unknown}; it passes on "
                            f"only the LSTM's variant options {list(LSTM_OPTIONS)}")
        self.vocab_size = check_size("vocab_size", vocab_size)
        self.dtype = check_dtype(dtype)
        self.lstm_options = dict(lstm_options)   # what a checkpoint needs to build the same model
        rng = np.random.default_rng(rng)     # one stream for all three, so they draw different values
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, rng=rng)
        self.lstm = LSTM(embedding_dim, hidden_size, num_layers, dropout=dropout, dtype=dtype,
                         rng=rng, **lstm_options)
        self.linear = Linear(hidden_size, vocab_size, dtype=dtype, rng=rng)
        self._cache = None

    def __repr__(self):
        return (f"CharLM(\n  (embedding): {self.embedding!r}\n  (lstm): {self.lstm!r}\n"
                f"  (linear): {self.linear!r}\n)")

    def forward(self, ids, hx=None):
        """Scores for the next character at every step.

        Inputs:
        - ids: (T, N) integers in [0, V)
        - hx: None (zeros) or (h_0, c_0), each (L, N, H): the state carried in

        Returns:
        - logits: (T, N, V)
        - (h_n, c_n): each (L, N, H), the state after the last step
        """
        ids = check_ids("CharLM", ids, self.vocab_size)
        if ids.ndim != 2:
            raise ValueError(f"CharLM: expected ids of shape (T, N), got {ids.shape}")
        T, N = ids.shape
        x = self.embedding(ids)                                    # (T, N, E)
        output, (h_n, c_n) = self.lstm(x, hx)                      # (T, N, H)
        # One GEMM for all T N steps: (T N, H) @ (H, V), not T GEMMs of (N, H).
        logits = self.linear(output.reshape(T * N, -1))            # (T N, V)
        self._cache = (T, N) if is_grad_enabled() else NO_CACHE
        return logits.reshape(T, N, self.vocab_size), (h_n, c_n)

    def backward(self, grad_logits, grad_hx=None):
        """Backpropagate through the most recent forward.

        Inputs:
        - grad_logits: (T, N, V)
        - grad_hx: None or (grad_h_n, grad_c_n), each (L, N, H)

        Returns:
        - (grad_h0, grad_c0): each (L, N, H), the gradient of the state carried in
          (truncated BPTT drops it: that is where the gradient is cut)
        Parameter gradients are added to each ``p.grad``.
        """
        T, N = self._saved_cache()
        grad_logits = np.asarray(grad_logits, dtype=self.dtype)
        if grad_logits.shape != (T, N, self.vocab_size):
            raise ValueError(f"CharLM.backward: expected grad_logits of shape "
                             f"{(T, N, self.vocab_size)}, got {grad_logits.shape}")
        grad_output = self.linear.backward(grad_logits.reshape(T * N, self.vocab_size))   # (T N, H)
        grad_x, (grad_h0, grad_c0) = self.lstm.backward(grad_output.reshape(T, N, -1), grad_hx)
        self.embedding.backward(grad_x)                            # (T, N, E) -> embedding.weight.grad
        return grad_h0, grad_c0
