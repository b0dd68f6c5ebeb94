"""npylstm: a from-scratch NumPy LSTM, exact against torch.nn.LSTM.

Modules (torch.nn-shaped, with hand-written backward):
    Parameter, Module, LSTM, LSTMCell, Linear, MSELoss
Optimisation:
    Adam, SGD, clip_grad_norm_
The math, as pure functions with explicit caches:
    npylstm.functional
"""
from . import functional
from .clip import clip_grad_norm_
from .linear import Linear
from .loss import MSELoss
from .lstm import LSTM
from .lstm_cell import LSTMCell
from .module import Module, Parameter
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = ["Parameter", "Module", "LSTM", "LSTMCell", "Linear", "MSELoss",
           "Adam", "SGD", "clip_grad_norm_", "functional"]
