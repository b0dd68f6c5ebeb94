"""Inside the character model: interpretable cells, gate saturation, where it beats counting.

Functions over arrays that return arrays (the pictures and the page only draw
what these return), after Karpathy, Johnson & Fei-Fei, "Visualizing and
Understanding Recurrent Networks" (2015), and LSTMVis (Strobelt et al. 2017):

- ``record_cells``: every gate and the cell state of every layer at every step,
  replayed with the plain cell (``npylstm.gates.record_gates``);
- ``correlations`` and ``top_cells``: the Pearson correlation of each cell's
  tanh(c) with each feature of the text (``features.text_features``);
- ``span_scores``: LSTMVis's question, which cells are on inside a span of the
  text and off around it;
- ``saturation``: each unit's fraction of steps with a gate below 0.1 (left
  saturated) and above 0.9 (right saturated), Karpathy et al.'s Fig. 3;
- ``char_bits``, ``error_groups`` and ``error_table``: the LSTM's loss per
  character against a count-based n-gram's, grouped by what the character is
  (Karpathy et al., section 5).

Shapes: T characters (steps), L layers, H hidden units per layer.
"""
import numpy as np

from .features import closing_distance

GATES = ("i", "f", "o")


# --- recording -------------------------------------------------------------------------------

def record_cells(model, ids, hx=None):
    """Gates and cell states of every layer of a character model over one text.

    Inputs:
    - model: a CharLM (``model.embedding``, ``model.lstm``, ``model.linear``)
    - ids: (T,) character ids
    - hx: None (zeros) or (h_0, c_0) as the model's LSTM takes them

    Returns:
    - dict of (T, L, H) arrays "i", "f", "g", "o", "c": ``record_gates`` of each
      layer, run with the plain cell one step at a time (so this is also an
      independent check of the fast path), and "h": (T, H), the top layer's
      hidden state, from which the model predicts the next character
    """
    from ..gates import record_gates
    from ..module import no_grad

    ids = np.asarray(ids).reshape(-1)
    with no_grad():
        x = model.embedding(ids)                                   # (T, E)
    records = [record_gates(model.lstm, x, hx, layer=k) for k in range(model.lstm.num_layers)]
    out = {name: np.stack([r[name] for r in records], axis=1) for name in "ifgoc"}
    out["h"] = records[-1]["h"]
    return out


def char_bits(model, h, ids):
    """(T,) the model's loss in bits on each character; entry 0 is NaN.

    Entry t is -log2 p(ids[t] | ids[:t]), predicted from the top layer's hidden
    state after character t-1, h[t-1] (``record_cells``'s "h"); the first
    character has no prediction.
    """
    from ..module import no_grad

    ids = np.asarray(ids).reshape(-1)
    with no_grad():
        z = model.linear(h[:-1]).astype(np.float64)                # (T-1, V) logits
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))       # log-softmax
    bits = np.full(len(ids), np.nan)
    bits[1:] = -log_p[np.arange(len(ids) - 1), ids[1:]] / np.log(2.0)
    return bits


def one_blas_thread():
    """A context with one BLAS thread: the plain cell's N = 1 products are tiny, and
    several threads on them cost more than they give (10x slower on a busy 2-core machine)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def inspect_text(model, vocab, text, starts=None, top=8):
    """Everything ``python -m npylstm.charlm inspect`` shows, as arrays; writes no files.

    Inputs:
    - model, vocab: a CharLM and its Vocabulary
    - text: str of T characters, all in the vocabulary (else ValueError naming them)
    - starts: offsets where files start (default: the corpus's header lines)
    - top: how many cells to keep per feature

    Returns:
    - dict: "text"; "features" (name -> (T,)); "states" (T, L, H), tanh(c);
      "r" (name -> (L, H)); "top" (name -> [(layer, unit, r)], |r| descending);
      "saturation" (``saturation_table``); "bits" (T,), the model's loss per
      character (``char_bits``)
    """
    from .features import text_features

    ids = vocab.encode(text)
    with one_blas_thread():
        record = record_cells(model, ids)
    states = np.tanh(record["c"].astype(np.float64))
    features = text_features(text, starts)
    r = correlations(states, features)
    return {"text": text, "features": features, "states": states, "r": r,
            "top": {name: top_cells(values, top) for name, values in r.items()},
            "saturation": saturation_table(record),
            "bits": char_bits(model, record["h"], ids)}


def held_out_text(corpus, chars=20000, valid_fraction=0.05):
    """inspect's default text: the held-out part of the training corpus, its first ``chars``
    characters from the first file boundary in it (from its start if it has none).

    Returns:
    - text: str of at most ``chars`` characters
    - starts: the offsets in it where files start
    """
    from ..text import file_starts, split_train_valid

    _, valid = split_train_valid(corpus, valid_fraction)
    starts = file_starts(valid)
    begin = starts[0] if starts else 0
    text = valid[begin:begin + chars]
    return text, [s - begin for s in starts if begin <= s < begin + len(text)]


def cells_json(result):
    """The contract's cells.json from ``inspect_text``'s result."""
    return {"chars": len(result["text"]),
            "features": {name: [{"layer": l, "unit": u, "r": r} for l, u, r in cells]
                         for name, cells in result["top"].items()},
            "saturation": result["saturation"]}


# --- interpretable cells ---------------------------------------------------------------------

def correlations(states, features):
    """Pearson correlation of every cell with every feature.

    Inputs:
    - states: (T, L, H), e.g. tanh(c)
    - features: dict name -> (T,) values

    Returns:
    - dict name -> (L, H) r; a feature that is constant over the text is left
      out (its r is undefined); a cell that is constant gets r = 0
    """
    states = np.asarray(states, dtype=np.float64)
    T = states.shape[0]
    s = states.reshape(T, -1)
    constant = np.ptp(s, axis=0) == 0                               # (L*H,)
    s = s - s.mean(axis=0)
    s_norm = np.sqrt((s * s).sum(axis=0))
    out = {}
    for name, values in features.items():
        y = np.asarray(values, dtype=np.float64)
        if y.shape != (T,):
            raise ValueError(f"feature {name!r}: expected shape ({T},), got {y.shape}")
        y = y - y.mean()
        y_norm = np.sqrt(y @ y)
        if np.ptp(y) == 0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (y @ s) / (s_norm * y_norm)
        out[name] = np.where(constant, 0.0, r).reshape(states.shape[1:])
    return out


def top_cells(r, k=10):
    """The k cells with the largest |r|, the highest first: a list of (layer, unit, r)."""
    r = np.asarray(r)
    order = np.argsort(-np.abs(r), axis=None, kind="stable")[:k]
    layers, units = np.unravel_index(order, r.shape)
    return [(int(l), int(u), float(r[l, u])) for l, u in zip(layers, units)]


def span_scores(states, start, end, window=None):
    """LSTMVis's span query: how much each cell is on inside text[start:end] and off around it.

    score = mean over the span - mean over the ``window`` characters on either
    side of it (default: the span's length on each side, clipped at the text's
    ends). A positive score: higher inside than around; a negative score: lower
    inside (tanh(c) is as meaningful at -1 as at +1). Rank by |score|.

    Inputs:
    - states: (T, L, H); start < end, a span of the text

    Returns:
    - (L, H) scores
    """
    states = np.asarray(states, dtype=np.float64)
    T = states.shape[0]
    if not 0 <= start < end <= T:
        raise ValueError(f"span_scores: expected 0 <= start < end <= {T}, got ({start}, {end})")
    w = end - start if window is None else int(window)
    around = np.r_[max(0, start - w):start, end:min(T, end + w)]
    if len(around) == 0:
        raise ValueError("span_scores: the span covers the whole text, nothing around it")
    return states[start:end].mean(axis=0) - states[around].mean(axis=0)


# --- gate saturation -------------------------------------------------------------------------

def saturation(gate, low=0.1, high=0.9):
    """Each unit's fractions of steps left- and right-saturated (Karpathy et al., Fig. 3).

    Inputs:
    - gate: (T, H) or (T, L, H) gate values in [0, 1]

    Returns:
    - left: (H,) or (L, H), the fraction of steps with gate < low
    - right: likewise, gate > high
    """
    gate = np.asarray(gate)
    return (gate < low).mean(axis=0), (gate > high).mean(axis=0)


def saturation_table(record):
    """cells.json's "saturation": a dict per layer and gate i, f, o, with the H fractions."""
    table = []
    for name in GATES:
        left, right = saturation(record[name])                    # (L, H) each
        for k in range(left.shape[0]):
            table.append({"layer": k, "gate": name, "left": left[k].tolist(),
                          "right": right[k].tolist()})
    return sorted(table, key=lambda row: (row["layer"], GATES.index(row["gate"])))


# --- where the LSTM beats counting -----------------------------------------------------------

def error_groups(text, features, starts=None, far=20):
    """Masks over the characters of ``text`` for the error analysis, by what each character is.

    Inputs:
    - text: str of T characters; features: its ``text_features`` (Python)
    - far: a closing bracket or quote is "far" when its opening is more than
      ``far`` characters back

    Returns:
    - dict group name -> (T,) bool; "all" first, then closing brackets and
      closing quotes near and far, inside strings, inside comments, the
      indentation at the start of a line, and the rest of the code
    """
    T = len(text)
    chars = np.array(list(text)) if T else np.zeros(0, "<U1")
    dist = closing_distance(text, starts)
    is_close = np.isin(chars, list(")]}"))
    in_string = features.get("in_string", np.zeros(T, np.int64)).astype(bool)
    in_comment = features.get("in_comment", np.zeros(T, np.int64)).astype(bool)
    quote_close = (dist > 0) & ~is_close
    # Leading whitespace: a space or tab with only spaces and tabs before it in its line.
    col = features["column"]
    blank = np.isin(chars, [" ", "\t"])
    seen = np.concatenate([[0], np.cumsum(~blank)])              # non-blank characters before t
    t = np.arange(T)
    leading = blank & (seen[t] - seen[t - col] == 0)
    groups = {
        "all": np.ones(T, bool),
        f"closing bracket, opened <= {far} chars back": is_close & (dist > 0) & (dist <= far),
        f"closing bracket, opened > {far} chars back": is_close & (dist > far),
        f"closing quote, opened <= {far} chars back": quote_close & (dist <= far),
        f"closing quote, opened > {far} chars back": quote_close & (dist > far),
        "inside a string": in_string & ~quote_close,
        "inside a comment": in_comment,
        "indentation (leading spaces)": leading & ~in_string,
    }
    used = np.zeros(T, bool)
    for name, mask in list(groups.items())[1:]:
        used |= mask
    groups["other code"] = ~used
    return groups


def error_table(lstm_bits, ngram_bits, groups):
    """The two models' mean loss per group of characters.

    Inputs:
    - lstm_bits, ngram_bits: (T,) bits per character of each model on the same
      characters (entry t: predicting character t; NaN where there is none)
    - groups: dict name -> (T,) bool masks

    Returns:
    - list of dicts: "group", "chars" (count), "lstm_bpc", "ngram_bpc",
      "difference" (lstm - ngram: negative where the LSTM does better); the
      three means are None for a group without characters
    """
    lstm_bits, ngram_bits = np.asarray(lstm_bits, float), np.asarray(ngram_bits, float)
    ok = np.isfinite(lstm_bits) & np.isfinite(ngram_bits)
    rows = []
    for name, mask in groups.items():
        m = np.asarray(mask, bool) & ok
        n = int(m.sum())
        if n == 0:                       # None, not NaN: the table goes into JSON
            rows.append({"group": name, "chars": 0, "lstm_bpc": None, "ngram_bpc": None,
                         "difference": None})
            continue
        a, b = float(lstm_bits[m].mean()), float(ngram_bits[m].mean())
        rows.append({"group": name, "chars": n, "lstm_bpc": a, "ngram_bpc": b, "difference": a - b})
    return rows
