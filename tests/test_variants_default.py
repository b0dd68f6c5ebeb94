"""With every variant option at its default, npylstm.LSTM is bit-for-bit what it was.

tests/npylstm_c6dfe56/ is a frozen copy of the LSTM of commit c6dfe56, the
last commit before the variants (peephole, input_forget, clip, ablate). Each
test builds the same configuration twice, with that copy and with the current
npylstm.LSTM, feeds both the same inputs and upstream gradients, and compares
the initial weights, outputs, final states and every gradient with ``==``:
once with the variant options omitted, once with each given explicitly at its
default.

Exact comparison is right here because both run in this process, on the same
arrays, with the same NumPy and BLAS: identical arithmetic gives identical
bits on any machine, whatever kernel its BLAS picks. (Arrays stored on one
machine could not be compared with ``==`` on another, where the BLAS sums in
another order.) A change of the default path by one rounding, such as
computing a gate in another order or summing the weight gradients of the
steps in blocks, fails these tests.
"""
import hashlib
from pathlib import Path

import numpy as np
import pytest

import npylstm
import npylstm_c6dfe56                  # tests/npylstm_c6dfe56, on sys.path with tests/

FROZEN = Path(npylstm_c6dfe56.__file__).parent
# git blob ids of the copied files at c6dfe56: `git rev-parse c6dfe56:npylstm/lstm.py` etc.
BLOBS = {
    "lstm.py": "16b43cf0780d5e90acc5056d0289425542a82150",
    "module.py": "5df34982b339e6852090fc0a9052b1599bf51290",
    "functional/layer.py": "0718407c9c6974fb85933331a3274b08e20bb02d",
}
DEFAULTS = dict(peephole=False, input_forget=False, clip=None, ablate=())

CASES = {
    # name: (LSTM keyword arguments, T, N or None for unbatched, with hx, with lengths, seed)
    "plain32": (dict(input_size=3, hidden_size=6, dtype=np.float32), 7, 5, False, False, 0),
    "plain64": (dict(input_size=3, hidden_size=6, dtype=np.float64), 7, 5, True, False, 1),
    "deep64": (dict(input_size=2, hidden_size=5, num_layers=2, bidirectional=True, proj_size=3,
                    batch_first=True, dtype=np.float64), 6, 4, True, True, 2),
    "dropout32": (dict(input_size=2, hidden_size=4, num_layers=3, dropout=0.3, dtype=np.float32),
                  5, 3, True, True, 3),
    "nobias_unbatched64": (dict(input_size=3, hidden_size=4, bias=False, bidirectional=True,
                                dtype=np.float64), 5, None, True, False, 4),
    # Long enough that a change in how the T steps' weight gradients are summed (in
    # blocks of steps, say) shows; the cases above have T <= 7.
    "long32": (dict(input_size=2, hidden_size=8, dtype=np.float32), 40, 6, True, False, 5),
    "long_lengths64": (dict(input_size=2, hidden_size=8, bidirectional=True, dtype=np.float64),
                       40, 6, True, True, 6),
}


def make_inputs(kwargs, T, N, with_hx, with_lengths, seed):
    """x, hx, lengths and the upstream gradients (g_out, g_h, g_c) of a case, drawn from seed + 1."""
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
    hx = None
    if with_hx:
        hx = (rng.standard_normal((D * L,) + batch + (Hout,)).astype(dtype),
              rng.standard_normal((D * L,) + batch + (H,)).astype(dtype))
    lengths = rng.integers(1, T + 1, size=N) if with_lengths else None
    out_shape = x.shape[:-1] + (D * Hout,)
    grads = (rng.standard_normal(out_shape).astype(dtype),
             rng.standard_normal((D * L,) + batch + (Hout,)).astype(dtype),
             rng.standard_normal((D * L,) + batch + (H,)).astype(dtype))
    return x.astype(dtype), hx, lengths, grads


def run(lstm, x, hx, lengths, grads):
    """Every array the LSTM gives: initial parameters, outputs, states and all gradients."""
    results = {"param." + name: p.data.copy() for name, p in lstm.named_parameters()}
    output, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    grad_x, (grad_h0, grad_c0) = lstm.backward(grads[0], (grads[1], grads[2]))
    results.update(output=output, h_n=h_n, c_n=c_n, grad_x=grad_x, grad_h0=grad_h0, grad_c0=grad_c0)
    results.update(("grad." + name, p.grad) for name, p in lstm.named_parameters())
    return results


def test_the_frozen_copy_is_c6dfe56():
    """tests/npylstm_c6dfe56 holds c6dfe56's files unchanged (git blob ids, line ends normalised)."""
    for name, blob in BLOBS.items():
        data = (FROZEN / name).read_bytes().replace(b"\r\n", b"\n")
        got = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert got == blob, f"tests/npylstm_c6dfe56/{name} was edited; it must stay c6dfe56's"


@pytest.mark.parametrize("explicit", [False, True], ids=["omitted", "explicit-defaults"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_default_path_is_bit_identical_to_c6dfe56(case, explicit):
    kwargs, T, N, with_hx, with_lengths, seed = CASES[case]
    inputs = make_inputs(kwargs, T, N, with_hx, with_lengths, seed)
    before = run(npylstm_c6dfe56.LSTM(**kwargs, rng=seed), *inputs)
    now_kwargs = dict(kwargs, **DEFAULTS) if explicit else kwargs
    now = run(npylstm.LSTM(**now_kwargs, rng=seed), *inputs)
    assert set(now) == set(before), f"{case}: arrays differ, {sorted(set(now) ^ set(before))}"
    for name in before:
        mine, old = now[name], before[name]
        assert mine.dtype == old.dtype, f"{case}: {name} dtype {mine.dtype} vs {old.dtype}"
        assert mine.shape == old.shape, f"{case}: {name} shape {mine.shape} vs {old.shape}"
        # Same process, same arrays, same BLAS: exact, not a tolerance (module docstring).
        diff = np.max(np.abs(mine.astype(np.float64) - old), initial=0.0)
        assert np.array_equal(mine, old), f"{case}: {name} differs from c6dfe56 by up to {diff:.3e}"
