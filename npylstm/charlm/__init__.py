"""The character-level language model (issue 16).

- ``model``: CharLM, Embedding -> LSTM -> Linear on every step
- ``step``: truncated BPTT over B streams: get_batch, train_step, evaluate
"""
from .model import CharLM
from .step import bits_per_char, evaluate, get_batch, num_chunks, train_step

__all__ = ["CharLM", "train_step", "get_batch", "num_chunks", "evaluate", "bits_per_char"]
