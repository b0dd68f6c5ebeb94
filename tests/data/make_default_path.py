"""Write tests/data/default_path.npz: npylstm.LSTM results from before the variants.

The LSTM variants (peephole, input_forget, clip, ablate) must leave the
default path bit-for-bit unchanged. This script records, for a few
configurations, the outputs and every gradient of the LSTM of commit c6dfe56
(the last commit before the variants). tests/test_variants_default.py rebuilds
the same configurations with the current code and compares with ``==``.

Run it against that commit's package, never the current one:

    git archive c6dfe56 npylstm | tar -x -C /tmp/npylstm-c6dfe56
    PYTHONPATH=/tmp/npylstm-c6dfe56 python tests/data/make_default_path.py

The configurations live here only; the test reads them back from the file.
"""
import json
import sys
from pathlib import Path

import numpy as np

import npylstm

CASES = {
    # name: (LSTM keyword arguments, T, N or None for unbatched, with hx, with lengths)
    "plain32": (dict(input_size=3, hidden_size=6, dtype="float32"), 7, 5, False, False),
    "plain64": (dict(input_size=3, hidden_size=6, dtype="float64"), 7, 5, True, False),
    "deep64": (dict(input_size=2, hidden_size=5, num_layers=2, bidirectional=True, proj_size=3,
                    batch_first=True, dtype="float64"), 6, 4, True, True),
    "dropout32": (dict(input_size=2, hidden_size=4, num_layers=3, dropout=0.3, dtype="float32"),
                  5, 3, True, True),
    "nobias_unbatched64": (dict(input_size=3, hidden_size=4, bias=False, bidirectional=True,
                                dtype="float64"), 5, None, True, False),
    # Long enough that a change in how the T steps' weight gradients are summed (in
    # blocks of steps, say) shows; the cases above have T <= 7.
    "long32": (dict(input_size=2, hidden_size=8, dtype="float32"), 40, 6, True, False),
    "long_lengths64": (dict(input_size=2, hidden_size=8, bidirectional=True, dtype="float64"),
                       40, 6, True, True),
}


def run_case(kwargs, T, N, with_hx, with_lengths, seed):
    """The LSTM of a case, its inputs, its results and gradients, as a dict of arrays."""
    kwargs = dict(kwargs, dtype=np.dtype(kwargs["dtype"]))
    lstm = npylstm.LSTM(**kwargs, rng=seed)
    dtype, D = kwargs["dtype"], 2 if kwargs.get("bidirectional") else 1
    L, H = kwargs.get("num_layers", 1), kwargs["hidden_size"]
    Hout = kwargs.get("proj_size", 0) or H
    rng = np.random.default_rng(seed + 1)
    batch = () if N is None else (N,)
    if N is None:
        x = rng.standard_normal((T, kwargs["input_size"]))
    elif kwargs.get("batch_first"):
        x = rng.standard_normal((N, T, kwargs["input_size"]))
    else:
        x = rng.standard_normal((T, N, kwargs["input_size"]))
    x = x.astype(dtype)
    hx = None
    if with_hx:
        hx = (rng.standard_normal((D * L,) + batch + (Hout,)).astype(dtype),
              rng.standard_normal((D * L,) + batch + (H,)).astype(dtype))
    lengths = rng.integers(1, T + 1, size=N) if with_lengths else None
    output, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    g_out = rng.standard_normal(output.shape).astype(dtype)
    g_h = rng.standard_normal(h_n.shape).astype(dtype)
    g_c = rng.standard_normal(c_n.shape).astype(dtype)
    grad_x, (grad_h0, grad_c0) = lstm.backward(g_out, (g_h, g_c))
    arrays = dict(x=x, g_out=g_out, g_h=g_h, g_c=g_c, output=output, h_n=h_n, c_n=c_n,
                  grad_x=grad_x, grad_h0=grad_h0, grad_c0=grad_c0)
    if hx is not None:
        arrays.update(h0=hx[0], c0=hx[1])
    if lengths is not None:
        arrays["lengths"] = lengths
    for name, p in lstm.named_parameters():
        arrays["param." + name] = p.data
        arrays["grad." + name] = p.grad
    return arrays


def main(out):
    arrays, meta = {}, {}
    for seed, (case, (kwargs, T, N, with_hx, with_lengths)) in enumerate(CASES.items()):
        for key, value in run_case(kwargs, T, N, with_hx, with_lengths, seed).items():
            arrays[f"{case}/{key}"] = value
        meta[case] = dict(kwargs=kwargs, T=T, N=N, seed=seed)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({len(CASES)} cases) with npylstm from {Path(npylstm.__file__).parent}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("default_path.npz"))
