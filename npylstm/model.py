"""LSTMRegressor: the seed's model, an LSTM read out by a Linear at the last step.

    output, _ = lstm(x_seq)              # (T, N, H)
    pred = linear(output[-1])            # (N, output_size)

With ``lengths`` each sequence is read at its own last step,
``output[lengths - 1, arange(N)]``, as torch does through a packed sequence.

Shapes: T steps, N batch, I input size, H hidden size.
"""
import copy

import numpy as np

from .linear import Linear
from .lstm import LSTM
from .module import NO_CACHE, Module, as_real, check_dtype, check_shape, is_grad_enabled, no_grad, uniform


class LSTMRegressor(Module):
    """LSTM(input_size, hidden_size, num_layers, **lstm_options) + Linear(hidden_size, output_size).

    Submodules ``lstm`` and ``linear``; the state_dict keys are those of the
    seed's torch model (lstm.weight_ih_l0, ..., linear.weight, linear.bias).
    Both start with torch's default initialisation, drawn from one generator
    made from ``rng``; ``init_like_seed`` then gives the seed's linear layer.

    ``lstm_options`` are the LSTM's variants: ``peephole``, ``input_forget``,
    ``clip`` and ``ablate`` (npylstm.LSTM); any other keyword is a TypeError.
    With peepholes the Linear still draws the numbers it would draw without
    them, so variants built from the same ``rng`` start from the same weights
    and differ only in their extra parameters (the study compares them so).
    """

    LSTM_OPTIONS = ("peephole", "input_forget", "clip", "ablate")

    def __init__(self, input_size=1, hidden_size=100, output_size=1, num_layers=1, *,
                 dtype=np.float32, rng=None, **lstm_options):
        super().__init__()
        unknown = sorted(set(lstm_options) - set(self.LSTM_OPTIONS))
        if unknown:
            raise TypeError(f"LSTMRegressor got unexpected keyword arguments {unknown}; "
                            f"the LSTM options it takes are {', '.join(self.LSTM_OPTIONS)}")
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(rng)       # one stream for both, so they draw different values
        linear_rng = rng
        if lstm_options.get("peephole"):
            # The peepholes are drawn after the LSTM's other weights; the Linear
            # continues the stream where a plain LSTM would have left it.
            linear_rng = copy.deepcopy(rng)
            LSTM(input_size, hidden_size, num_layers, dtype=dtype, rng=linear_rng)
        self.lstm = LSTM(input_size, hidden_size, num_layers, dtype=dtype, rng=rng, **lstm_options)
        self.linear = Linear(hidden_size, output_size, dtype=dtype, rng=linear_rng)
        self.state = None
        self._cache = None

    def __repr__(self):
        return f"LSTMRegressor(\n  (lstm): {self.lstm!r}\n  (linear): {self.linear!r}\n)"

    def forward(self, x_seq, lengths=None, hx=None):
        """Predict one value per sequence from its last (valid) step.

        Inputs:
        - x_seq: (T, N, I), time-major as in the seed
        - lengths: None, or (N,) integers in 1..T; sequence b is read at step lengths[b]-1
        - hx: None (zeros) or (h_0, c_0), as the LSTM takes it: (L, N, H) each

        Returns:
        - pred: (N, output_size)

        ``self.state`` is then the LSTM's final state (h_n, c_n), (L, N, H) each:
        pass it as the next call's ``hx`` to continue a stream.
        """
        x_seq = as_real("LSTMRegressor", "x_seq", x_seq, self.dtype)
        check_shape("LSTMRegressor", "x_seq", x_seq, ("T", "N", self.lstm.input_size))
        output, self.state = self.lstm(x_seq, hx, lengths=lengths)  # (T, N, H)
        T, N = output.shape[:2]
        if lengths is None:
            steps = np.full(N, T - 1)
        else:
            steps = np.asarray(lengths).astype(np.int64) - 1     # the LSTM has checked them
        last = output[steps, np.arange(N)]                         # (N, H)
        self._cache = output.shape if is_grad_enabled() else NO_CACHE
        return self.linear(last)

    def backward(self, grad_pred):
        """grad_pred: (N, output_size) -> grad_x_seq: (T, N, I); adds to every p.grad."""
        output_shape = self._saved_cache()
        grad_last = self.linear.backward(grad_pred)                # (N, H)
        # The step read for sequence b, output[steps[b], b], is h_n[-1, b]: the
        # last layer's state after the sequence's own last step. So its gradient
        # enters as grad_h_n, the same numbers as a (T, N, H) grad_output that
        # is zero but there, without building and reading that array.
        L, N, H = self.lstm.num_layers, output_shape[1], output_shape[2]
        grad_h_n = np.zeros((L, N, H), self.dtype)
        grad_h_n[-1] = grad_last
        grad_x, _ = self.lstm.backward(None, (grad_h_n, np.zeros((L, N, H), self.dtype)))
        return grad_x


def init_like_seed(model, rng):
    """The seed's ``model.apply(init_parameters)``: Xavier-uniform linear.weight, zero linear.bias.

    Xavier-uniform draws U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
    The LSTM keeps torch's default. Returns the model.
    """
    fan_out, fan_in = model.linear.weight.shape
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    model.linear.weight.data[...] = uniform(np.random.default_rng(rng), bound,
                                            (fan_out, fan_in), model.dtype)
    model.linear.bias.data[...] = 0
    return model


def closed_loop_forecast(model, window, steps):
    """Predict ``steps`` values past the end of ``window``, feeding each prediction back in.

    Every step reads the latest L values (as in training, from a zero state):
    the window slides by one and its newest value is the model's own prediction.
    So K steps cost K forwards of L steps each, O(K L): carrying the LSTM state
    from one step to the next would cost O(K) but would show the model a
    history longer than the zero-state windows it was trained on, and give
    other predictions. The forwards run under no_grad(): nothing is cached.

    Inputs:
    - window: (L,) the last L values of the series
    - steps: K >= 0

    Returns:
    - forecast: (K,)
    """
    window = np.asarray(window, dtype=model.dtype).copy()
    forecast = np.empty(steps, model.dtype)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for k in range(steps):
                forecast[k] = model(window[:, None, None])[0, 0]   # (L, 1, 1) -> (1, 1)
                window = np.append(window[1:], forecast[k])
    finally:
        model.train(was_training)
    return forecast
