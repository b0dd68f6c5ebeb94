"""npylstm: a from-scratch NumPy LSTM, exact against torch.nn.LSTM.

Modules (torch.nn-shaped, with hand-written backward):
    Parameter, Module, LSTM, LSTMCell, Linear, Embedding, MSELoss, CrossEntropyLoss
    no_grad (inference: forwards keep no cache)
Optimisation:
    Adam, SGD, clip_grad_norm_
The math, as pure functions with explicit caches:
    npylstm.functional
Text and the character model:
    npylstm.text, npylstm.charlm (also ``python -m npylstm.charlm``)
The sine experiment of the seed notebook:
    npylstm.data, npylstm.model, npylstm.train (also ``python -m npylstm.train``)
Study aids:
    npylstm.gradcheck (also ``python -m npylstm.gradcheck``), npylstm.gates,
    npylstm.tasks, npylstm.study (also ``python -m npylstm.study``)
Across systems:
    npylstm.interop (torch, Keras, ONNX), npylstm.golden (``python -m npylstm.golden``)
"""
import importlib

from . import data, functional, model
from .clip import clip_grad_norm_
from .embedding import Embedding
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .lstm import LSTM
from .lstm_cell import LSTMCell
from .module import Module, Parameter, is_grad_enabled, no_grad
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = ["Parameter", "Module", "LSTM", "LSTMCell", "Linear", "Embedding", "MSELoss",
           "CrossEntropyLoss", "no_grad", "is_grad_enabled", "Adam", "SGD", "clip_grad_norm_", "functional", "data", "model"]

# Loaded on first use: importing them here would make ``python -m npylstm.train``
# find the module already imported (runpy warns), and keeps ``import npylstm`` light.
_LAZY = ("train", "gradcheck", "gates", "tasks", "study", "interop", "golden", "text", "charlm")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'npylstm' has no attribute {name!r}")
