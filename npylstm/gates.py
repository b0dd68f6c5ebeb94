"""A look inside a trained LSTM: its gates and cell state over one sequence.

``record_gates`` runs one layer and direction of an ``npylstm.LSTM`` one
step at a time with the plain cell ``functional.lstm_cell_forward``
(docs/lstm.md, eq. 1-7), independently of the fast path in ``layer.py``, and
keeps what the layer forgets: i, f, g, o and c at every step. The layers
below it run through the same plain cell. ``plot_gates`` draws them as heatmaps.

Shapes: T steps, I input size, H hidden size, Hout = P or H, D directions, L layers.
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


def cell_weights(lstm, layer=0, direction=0):
    """One layer and direction as keyword arguments of ``functional.cell.lstm_cell_forward``.

    The weights and, for a variant LSTM, its options (peephole vectors,
    input_forget, clip, ablate): exactly what the layer itself runs.
    """
    return lstm.layer_weights(layer, direction)


def _initial_state(lstm, hx, j):
    """Entry j = D*k + d of hx, as (1, Hout) and (1, H) rows; zeros for hx None."""
    H, Hout = lstm.hidden_size, lstm.proj_size or lstm.hidden_size
    if hx is None:
        return np.zeros((1, Hout), lstm.dtype), np.zeros((1, H), lstm.dtype)
    h0, c0 = (np.asarray(value, dtype=lstm.dtype) for value in hx)
    return h0[j].reshape(1, Hout), c0[j].reshape(1, H)


def _run_direction(lstm, x, hx, layer, direction, record=None):
    """One layer and direction over x (T, I_k) with the plain cell; returns h for every step (T, Hout).

    Steps run from T-1 down to 0 for the reverse direction; row t of the
    result (and of ``record``, when given) is input step t either way.
    """
    h, c = _initial_state(lstm, hx, (2 if lstm.bidirectional else 1) * layer + direction)
    weights = cell_weights(lstm, layer, direction)
    T = x.shape[0]
    hidden = np.empty((T, h.shape[1]), lstm.dtype)
    for t in (reversed(range(T)) if direction else range(T)):
        h, c, cache = lstm_cell_forward(x[t:t + 1], h, c, **weights)   # eq. 1-7, N = 1
        hidden[t] = h[0]
        if record is not None:
            for name in GATE_NAMES:
                record[name][t] = getattr(cache, name)[0]                # (H,); an ablated gate is 1
            record["c"][t] = c[0]
    return hidden


def record_gates(lstm, x, hx=None, *, layer=0, direction=0):
    """Gate activations and states of one layer and direction at every step.

    Inputs:
    - lstm: an npylstm.LSTM (any options, variants included; an ablated gate is 1)
    - x: one sequence, (T, I) or (T, 1, I) ((1, T, I) with batch_first)
    - hx: None (zeros) or (h_0, c_0) as the LSTM takes them for this input,
      (D*L, Hout) and (D*L, H), or with a batch axis of 1; entry D*layer +
      direction is this layer's and direction's initial state
    - layer: k in [0, L); its input is what layers 0 .. k-1 give (both
      directions, concatenated as in the LSTM; no dropout)
    - direction: 0 forward, 1 reverse (bidirectional only)

    Returns:
    - dict of arrays, row t for input step t (for the reverse direction too,
      as in the LSTM's output):
      "i", "f", "o": (T, H) in [0, 1]; "g": (T, H) in [-1, 1];
      "c": (T, H), the cell state; "h": (T, Hout), the hidden state, which is
      this layer's and direction's part of the LSTM's output

    Raises ValueError for an input of the wrong shape and a layer or
    direction out of range.
    """
    lstm.layer_weights(layer, direction)                    # ValueError when out of range
    x = _one_sequence(lstm, x)
    T, H = x.shape[0], lstm.hidden_size
    D = 2 if lstm.bidirectional else 1
    for k in range(layer):                                  # the layers below, as the LSTM runs them
        x = np.concatenate([_run_direction(lstm, x, hx, k, d) for d in range(D)], axis=1)
    record = {name: np.empty((T, H), lstm.dtype) for name in GATE_NAMES + ("c",)}
    record["h"] = _run_direction(lstm, x, hx, layer, direction, record)
    return record


def order_by_change(record, steps):
    """Hidden units sorted by how much of a change at ``steps`` their cell state keeps.

    For each marked step t, a unit's held change is |c_u - c_{t-1}|, where u
    is the step before the next marked step (or the last step), c_{-1} = 0:
    a unit that stores the marked value jumps at the mark and holds it, while
    a unit that merely reacts to the mark falls back and scores low. Units
    are scored by the sum over the marked steps; with no steps, by the total
    change sum_t |c_t - c_{t-1}|. Returns (H,) unit indices, the highest first.
    """
    c = record["c"]
    c_prev = np.vstack([np.zeros((1, c.shape[1]), c.dtype), c[:-1]])        # c_{t-1}, (T, H)
    if steps is None or not len(steps):
        score = np.abs(c - c_prev).sum(axis=0)
    else:
        steps = np.sort(np.asarray(steps))
        until = np.append(steps[1:], c.shape[0]) - 1                       # (K,)
        score = np.abs(c[until] - c_prev[steps]).sum(axis=0)
    return np.argsort(-score, kind="stable")


def plot_gates(lstm, x, path, hx=None, title=None, *, input_names=None, marked_steps=None):
    """Draw the input, then heatmaps of i, f, g, o and c over time, into a PNG file.

    The top panel shows the input channels. Below, one heatmap per quantity:
    time step on the x axis, hidden unit on the y axis, with a colorbar.
    Gates i, f, o share the range [0, 1], g has [-1, 1], c a range symmetric
    around 0. The units are sorted by how much of the change at the marked
    steps their cell state holds (``order_by_change``; by the total change
    if no steps are given), the highest at the top, and the marked steps are
    drawn as triangles.

    Inputs:
    - lstm, x, hx: as for ``record_gates``
    - path: file to write (str or pathlib.Path); missing folders are created
    - title: optional title of the figure
    - input_names: optional names of the I input channels
    - marked_steps: optional step indices to mark, e.g. the adding problem's marks

    Returns:
    - the path written, as a pathlib.Path
    """
    from pathlib import Path

    # matplotlib only here, and its object API with the Agg canvas: no
    # pyplot, so no global state and no GUI backend are touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    record = record_gates(lstm, x, hx)
    inputs = _one_sequence(lstm, x)                                # (T, I)
    T, H = record["c"].shape
    order = order_by_change(record, marked_steps)[::-1]            # most change at the top row
    c_max = max(float(np.max(np.abs(record["c"]))), 1e-12)
    g_label = "candidate g = tanh(z_g)"
    panels = [
        ("i", "input gate i", "viridis", 0.0, 1.0),
        ("f", "forget gate f", "viridis", 0.0, 1.0),
        ("g", g_label, "RdBu_r", -1.0, 1.0),
        ("o", "output gate o", "viridis", 0.0, 1.0),
        ("c", "cell state c = f * c_prev + i * g", "RdBu_r", -c_max, c_max),
    ]
    fig = Figure(figsize=(10, 1.9 * len(panels) + 2.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels) + 1, 1, sharex=True,
                        gridspec_kw=dict(height_ratios=[0.7] + [1] * len(panels)))
    top = axes[0]
    names = input_names or [f"x[{k}]" for k in range(inputs.shape[1])]
    for k, name in enumerate(names):
        top.step(np.arange(T), inputs[:, k], where="mid", linewidth=1.2, label=name)
    top.set_title("input", fontsize=10, loc="right")
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(names), fontsize="small",
               frameon=False)
    top.grid(True, alpha=0.3)
    sorted_label = ("unit, sorted by\n|change of c|" if marked_steps is None
                    else "unit, sorted by\nchange of c held\nafter the marks")
    for ax, (name, label, cmap, vmin, vmax) in zip(axes[1:], panels):
        image = ax.imshow(record[name][:, order].T, aspect="auto", origin="lower",
                          interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax,
                          extent=(-0.5, T - 0.5, -0.5, H - 0.5))
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(sorted_label, fontsize=8)
        ticks = np.arange(H) if H <= 12 else np.linspace(0, H - 1, 5).round().astype(int)
        ax.set_yticks(ticks, [str(order[t]) for t in ticks], fontsize=7)
        fig.colorbar(image, ax=ax, pad=0.01)
    if marked_steps is not None:
        # A line through the input, a small triangle above each heatmap: a
        # line across the heatmaps would hide the very steps it marks.
        for t in marked_steps:
            top.axvline(t, color="black", linestyle=":", linewidth=1.0)
            for ax in axes[1:]:
                ax.plot(t, 1.0, marker="v", markersize=5, color="black",
                        transform=ax.get_xaxis_transform(), clip_on=False)
    axes[-1].set_xlabel("time step t" + ("" if marked_steps is None else
                                         " (triangles: marked steps)"))
    fig.suptitle(title or f"Inside layer 0 of {lstm!r}: gates and cell state over {T} steps",
                 fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
