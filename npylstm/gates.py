"""A look inside a trained LSTM: its gates and cell state over one sequence.

``record_gates`` runs layer 0 (forward direction) of an ``npylstm.LSTM`` one
step at a time with the plain cell ``functional.lstm_cell_forward``
(docs/lstm.md, eq. 1-7), independently of the fast path in ``layer.py``, and
keeps what the layer forgets: i, f, g, o and c at every step.
``plot_gates`` draws them as heatmaps.

Shapes: T steps, I input size, H hidden size, Hout = P or H.
"""
import numpy as np

from .functional.cell import lstm_cell_forward

GATE_NAMES = ("i", "f", "g", "o")


def _one_sequence(lstm, x):
    """x as (T, I): accepts (T, I), or one sequence of a batch, (T, 1, I) ((1, T, I) with batch_first)."""
    x = np.asarray(x, dtype=lstm.dtype)
    I = lstm.input_size
    if x.ndim == 2 and x.shape[1] == I:
        return x
    if x.ndim == 3 and x.shape[2] == I:
        if lstm.batch_first and x.shape[0] == 1:
            return x[0]
        if not lstm.batch_first and x.shape[1] == 1:
            return x[:, 0]
    batched = "(1, T, {I})" if lstm.batch_first else "(T, 1, {I})"
    raise ValueError(f"record_gates: expected one sequence of shape (T, {I}) or "
                     f"{batched.format(I=I)}, got {x.shape}")


def record_gates(lstm, x, hx=None):
    """Gate activations and states of layer 0, forward direction, at every step.

    Inputs:
    - lstm: an npylstm.LSTM (any options; only layer 0's forward direction,
      parameters ``*_l0``, is recorded)
    - x: one sequence, (T, I) or (T, 1, I) ((1, T, I) with batch_first)
    - hx: None (zeros) or (h_0, c_0) as the LSTM takes them for this input,
      (D*L, Hout) and (D*L, H), or with a batch axis of 1; entry 0 is used

    Returns:
    - dict of arrays, one row per step:
      "i", "f", "o": (T, H) in [0, 1]; "g": (T, H) in [-1, 1];
      "c": (T, H), the cell state; "h": (T, Hout), the hidden state, which
      for a one-layer unidirectional LSTM is its output
    """
    x = _one_sequence(lstm, x)
    T = x.shape[0]
    H, Hout = lstm.hidden_size, lstm.proj_size or lstm.hidden_size
    if hx is None:
        h = np.zeros((1, Hout), lstm.dtype)
        c = np.zeros((1, H), lstm.dtype)
    else:
        h = np.asarray(hx[0], dtype=lstm.dtype)[0].reshape(1, Hout)
        c = np.asarray(hx[1], dtype=lstm.dtype)[0].reshape(1, H)
    weights = dict(weight_ih=lstm.weight_ih_l0.data, weight_hh=lstm.weight_hh_l0.data)
    if lstm.bias:
        weights.update(bias_ih=lstm.bias_ih_l0.data, bias_hh=lstm.bias_hh_l0.data)
    if lstm.proj_size:
        weights.update(weight_hr=lstm.weight_hr_l0.data)

    record = {name: np.empty((T, H), lstm.dtype) for name in GATE_NAMES + ("c",)}
    record["h"] = np.empty((T, Hout), lstm.dtype)
    for t in range(T):
        h, c, cache = lstm_cell_forward(x[t:t + 1], h, c, **weights)   # eq. 1-7, N = 1
        i, f, g, o = cache[3:7]                                        # (1, H) each
        for name, value in zip(GATE_NAMES + ("c", "h"), (i, f, g, o, c, h)):
            record[name][t] = value[0]
    return record


def plot_gates(lstm, x, path, hx=None, title=None):
    """Draw heatmaps of i, f, g, o and c over time into a PNG file.

    One panel per quantity: time step on the x axis, hidden unit on the y
    axis, with a colorbar. Gates i, f, o share the range [0, 1], g has
    [-1, 1], c a range symmetric around 0.

    Inputs:
    - lstm, x, hx: as for ``record_gates``
    - path: file to write (str or pathlib.Path); missing folders are created
    - title: optional title of the figure

    Returns:
    - the path written, as a pathlib.Path
    """
    from pathlib import Path

    # matplotlib only here, and its object API with the Agg canvas: no
    # pyplot, so no global state and no GUI backend are touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    record = record_gates(lstm, x, hx)
    T, H = record["c"].shape
    c_max = max(float(np.max(np.abs(record["c"]))), 1e-12)
    panels = [
        ("i", "input gate i = sigmoid(z_i)", "viridis", 0.0, 1.0),
        ("f", "forget gate f = sigmoid(z_f)", "viridis", 0.0, 1.0),
        ("g", "candidate g = tanh(z_g)", "RdBu_r", -1.0, 1.0),
        ("o", "output gate o = sigmoid(z_o)", "viridis", 0.0, 1.0),
        ("c", "cell state c = f * c_prev + i * g", "RdBu_r", -c_max, c_max),
    ]
    fig = Figure(figsize=(10, 2.1 * len(panels) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True)
    for ax, (name, label, cmap, vmin, vmax) in zip(axes, panels):
        image = ax.imshow(record[name].T, aspect="auto", origin="lower", interpolation="nearest",
                          cmap=cmap, vmin=vmin, vmax=vmax, extent=(-0.5, T - 0.5, -0.5, H - 0.5))
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("hidden unit")
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[-1].set_xlabel("time step t")
    fig.suptitle(title or f"Inside layer 0 of {lstm!r}: gates and cell state over {T} steps")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
