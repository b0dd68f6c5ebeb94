"""The part of c6dfe56's npylstm.functional that its LSTM uses (read-only, see ../__init__.py)."""
from .layer import lstm_layer_backward, lstm_layer_forward

__all__ = ["lstm_layer_forward", "lstm_layer_backward"]
