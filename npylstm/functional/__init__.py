"""The math of npylstm as pure functions over arrays with explicit caches.

Each ``*_forward`` returns its results and a cache; the matching
``*_backward`` takes the upstream gradients and that cache and returns the
gradients of the inputs and parameters. Modules (``npylstm.LSTM`` and the
rest) only own parameters and call these.

- ``activations``: sigmoid (stable, through tanh) and the activation derivatives
- ``cell``: one LSTM step, the plain equations (with the variants)
- ``layer``: one layer in one direction over a sequence (BPTT), the fast path
- ``variant``: the names of the LSTM variants and the check of their options
- ``linear``: y = x W^T + b
- ``loss``: mean squared error and softmax cross-entropy
- ``embedding``: table lookup and its scatter-add gradient
"""
from .activations import sigmoid, sigmoid_grad, tanh_grad
from .cell import CellCache, lstm_cell_backward, lstm_cell_forward
from .layer import lstm_layer_backward, lstm_layer_forward
from .linear import linear_backward, linear_forward
from .embedding import embedding_backward, embedding_forward
from .loss import cross_entropy_backward, cross_entropy_forward, mse_backward, mse_forward
from .variant import ABLATIONS, check_variant

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh_grad",
    "lstm_cell_forward", "lstm_cell_backward", "CellCache",
    "lstm_layer_forward", "lstm_layer_backward",
    "linear_forward", "linear_backward",
    "mse_forward", "mse_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "embedding_forward", "embedding_backward",
    "ABLATIONS", "check_variant",
]
