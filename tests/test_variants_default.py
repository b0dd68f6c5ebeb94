"""With every variant option at its default, npylstm.LSTM is bit-for-bit what it was.

tests/data/default_path.npz holds outputs and gradients written by the LSTM of
commit c6dfe56, the last one before the variants, with
tests/data/make_default_path.py (its docstring says how). Here the current
code reruns the same configurations and must give exactly (==) the same
arrays: once with the variant options omitted, once with each given
explicitly at its default. A change of the default path by one rounding, such
as computing a gate in another order, fails these tests.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import npylstm

DATA = np.load(Path(__file__).parent / "data" / "default_path.npz", allow_pickle=False)
META = json.loads(str(DATA["meta"]))
DEFAULTS = dict(peephole=False, input_forget=False, clip=None, ablate=())


def rerun(case, explicit):
    meta = META[case]
    kwargs = dict(meta["kwargs"], dtype=np.dtype(meta["kwargs"]["dtype"]))
    if explicit:
        kwargs.update(DEFAULTS)
    lstm = npylstm.LSTM(**kwargs, rng=meta["seed"])
    get = lambda key: DATA[f"{case}/{key}"] if f"{case}/{key}" in DATA else None
    for name, p in lstm.named_parameters():
        assert np.array_equal(p.data, get("param." + name)), f"{case}: initial {name} differs"
    hx = None if get("h0") is None else (get("h0"), get("c0"))
    output, (h_n, c_n) = lstm(get("x"), hx, lengths=get("lengths"))
    grad_x, (grad_h0, grad_c0) = lstm.backward(get("g_out"), (get("g_h"), get("g_c")))
    results = dict(output=output, h_n=h_n, c_n=c_n, grad_x=grad_x, grad_h0=grad_h0, grad_c0=grad_c0)
    results.update(("grad." + name, p.grad) for name, p in lstm.named_parameters())
    return results


@pytest.mark.parametrize("explicit", [False, True], ids=["omitted", "explicit-defaults"])
@pytest.mark.parametrize("case", sorted(META))
def test_default_path_is_bit_identical_to_c6dfe56(case, explicit):
    results = rerun(case, explicit)
    names = [key.split("/", 1)[1] for key in DATA.files if key.startswith(case + "/")]
    expected = [n for n in names if n in results or n.startswith("grad.")]
    assert set(expected) == set(results), f"{case}: arrays differ, {sorted(set(expected) ^ set(results))}"
    for name in expected:
        mine, before = results[name], DATA[f"{case}/{name}"]
        assert mine.dtype == before.dtype, f"{case}: {name} dtype {mine.dtype} vs {before.dtype}"
        diff = np.max(np.abs(mine.astype(np.float64) - before), initial=0.0)
        assert np.array_equal(mine, before), f"{case}: {name} differs from c6dfe56 by up to {diff:.3e}"
