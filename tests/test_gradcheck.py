"""Finite-difference gradient checks (float64, no torch) and tests of the checker itself.

npylstm.gradcheck draws a random upstream gradient for every output, so an
error that cancels under a plain sum is still seen.
"""
import subprocess
import sys

import numpy as np
import pytest

import npylstm
import npylstm.functional
from npylstm.gradcheck import check_lstm, gradcheck, main

TOL = 1e-6          # central differences with eps = 1e-6 in float64 reach ~1e-8


def worst(results):
    return max(r.max_rel_error for r in results)


def assert_gradcheck(results, tol=TOL):
    bad = [f"{r.name}: {r.max_rel_error:.2e}" for r in results if not r.max_rel_error <= tol]
    assert not bad, "finite differences disagree: " + ", ".join(bad)


def cell_check(bias=True, unbatched=False, tamper=None, seed=0):
    """gradcheck npylstm.LSTMCell; ``tamper(grads)`` may break the analytic gradients."""
    rng = np.random.default_rng(seed)
    cell = npylstm.LSTMCell(3, 4, bias=bias, dtype=np.float64, rng=seed)
    for p in cell.parameters():
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape)
    lead = () if unbatched else (2,)
    arrays = {"input": rng.standard_normal(lead + (3,)), "h_0": rng.standard_normal(lead + (4,)),
              "c_0": rng.standard_normal(lead + (4,))}
    params = dict(cell.named_parameters())
    arrays.update((name, p.data) for name, p in params.items())

    def forward():
        return cell(arrays["input"], (arrays["h_0"], arrays["c_0"]))

    def backward(grads):
        cell.zero_grad()
        grad_x, (grad_h0, grad_c0) = cell.backward(*grads)
        result = {"input": grad_x, "h_0": grad_h0, "c_0": grad_c0}
        result.update((name, p.grad.copy()) for name, p in params.items())
        if tamper is not None:
            tamper(result)
        return result

    return gradcheck(forward, backward, arrays, seed=seed)


def make_lstm(num_layers=1, bidirectional=False, proj_size=0, bias=True, batch_first=False,
              unbatched=False, dropout=0.0, packed=False, T=3, N=2, I=2, H=3, seed=0):
    rng = np.random.default_rng(seed)
    lstm = npylstm.LSTM(I, H, num_layers, bias=bias, batch_first=batch_first, dropout=dropout,
                        bidirectional=bidirectional, proj_size=proj_size, dtype=np.float64,
                        rng=seed)
    for p in lstm.parameters():
        p.data[...] = rng.uniform(-0.8, 0.8, p.shape)
    D, Hout = 2 if bidirectional else 1, proj_size or H
    lead = () if unbatched else (N,)
    if unbatched:
        x = rng.standard_normal((T, I))
    else:
        x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    hx = (rng.standard_normal((D * num_layers,) + lead + (Hout,)),
          rng.standard_normal((D * num_layers,) + lead + (H,)))
    lengths = np.array([T] + [max(1, T - 1 - b) for b in range(N - 1)]) if packed else None
    return lstm, x, hx, lengths


# ------------------------------------------------------------ the components

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cell_finite_differences(bias, unbatched):
    assert_gradcheck(cell_check(bias, unbatched))


LSTM_CONFIGS = {
    "plain": dict(),
    "no-bias": dict(bias=False),
    "two-layers": dict(num_layers=2),
    "bidirectional": dict(bidirectional=True),
    "proj": dict(proj_size=2),
    "batch-first": dict(batch_first=True),
    "unbatched": dict(unbatched=True),
    "dropout": dict(num_layers=2, dropout=0.5),
    "lengths": dict(packed=True, N=3),
    "lengths-bidirectional": dict(packed=True, N=3, bidirectional=True),
    "everything": dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True,
                       dropout=0.4, packed=True, N=3),
    "everything-no-bias": dict(num_layers=2, bidirectional=True, proj_size=1, bias=False,
                               dropout=0.3),
}


@pytest.mark.parametrize("name", list(LSTM_CONFIGS))
def test_lstm_finite_differences(name):
    lstm, x, hx, lengths = make_lstm(**LSTM_CONFIGS[name], seed=len(name))
    results = check_lstm(lstm, x, hx, lengths)
    assert {r.name for r in results} == {"input", "h_0", "c_0"} | {n for n, _ in lstm.named_parameters()}
    assert_gradcheck(results)
    if lstm.dropout:
        assert any(m is not None and np.any(m == 0) for m in lstm._cache["masks"])


def test_lstm_finite_differences_without_hx():
    lstm, x, _, _ = make_lstm(num_layers=2, bidirectional=True)
    assert_gradcheck(check_lstm(lstm, x, None))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_finite_differences(bias):
    rng = np.random.default_rng(1)
    lin = npylstm.Linear(3, 2, bias=bias, dtype=np.float64, rng=1)
    arrays = {"x": rng.standard_normal((4, 2, 3))}
    params = dict(lin.named_parameters())
    arrays.update((name, p.data) for name, p in params.items())

    def backward(grad_y):
        lin.zero_grad()
        return dict({"x": lin.backward(grad_y)}, **{n: p.grad.copy() for n, p in params.items()})

    assert_gradcheck(gradcheck(lambda: lin(arrays["x"]), backward, arrays))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_finite_differences(reduction):
    rng = np.random.default_rng(2)
    crit = npylstm.MSELoss(reduction)
    arrays = {"input": rng.standard_normal((5, 2))}
    target = rng.standard_normal((5, 2))
    results = gradcheck(lambda: crit(arrays["input"], target),
                        lambda g: {"input": crit.backward(g)}, arrays)
    assert_gradcheck(results)


# -------------------------------------------------------------- the checker

def test_gradcheck_catches_a_scaled_gradient():
    def scale(grads):
        grads["weight_hh"] = grads["weight_hh"] * 1.001

    results = {r.name: r.max_rel_error for r in cell_check(tamper=scale)}
    assert results["weight_hh"] > 1e-4
    assert max(v for k, v in results.items() if k != "weight_hh") < TOL


def test_gradcheck_catches_a_dropped_bias_gradient():
    def drop(grads):
        grads["bias_hh"] = np.zeros_like(grads["bias_hh"])

    results = {r.name: r.max_rel_error for r in cell_check(tamper=drop)}
    assert results["bias_hh"] > 0.5


def test_gradcheck_uses_a_random_upstream_gradient():
    """A gradient that is wrong by a permutation of equal-weight terms passes a
    plain sum but not a random upstream gradient: swap grad rows of an output."""
    x = {"a": np.array([1.0, 2.0, 3.0])}
    results = gradcheck(lambda: x["a"] * 1.0, lambda g: {"a": g[::-1].copy()}, x)
    assert results[0].max_rel_error > 0.1


def test_gradcheck_refuses_float32_and_wrong_shapes():
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda: 0, lambda g: {}, {"a": np.zeros(2, np.float32)})
    a = {"a": np.zeros(3)}
    with pytest.raises(ValueError, match="shape"):
        gradcheck(lambda: a["a"] * 2, lambda g: {"a": np.zeros(2)}, a)


def break_layer_gradient(monkeypatch, name):
    """Make npylstm.functional.lstm_layer_backward return grads[name] 0.1% too large."""
    original = npylstm.functional.lstm_layer_backward

    def broken(*args, **kwargs):
        grad_x, grad_h0, grad_c0, grads = original(*args, **kwargs)
        grads[name] = grads[name] * 1.001
        return grad_x, grad_h0, grad_c0, grads

    monkeypatch.setattr(npylstm.functional, "lstm_layer_backward", broken)


def test_check_lstm_catches_a_broken_layer_backward(monkeypatch):
    break_layer_gradient(monkeypatch, "bias_hh")
    lstm, x, hx, _ = make_lstm()
    results = {r.name: r.max_rel_error for r in check_lstm(lstm, x, hx)}
    assert results["bias_hh_l0"] > 1e-4 and results["bias_ih_l0"] < TOL


def test_cli_all_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "npylstm.gradcheck", "--all", "--steps", "2", "--batch", "2",
         "--input-size", "2", "--hidden-size", "3"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) > 50 and all(line.startswith("ok") for line in lines[:-1])
    worst_error = float(lines[-1].split(":")[1].split()[0])
    assert worst_error < 1e-7 and "pass" in lines[-1]


def test_cli_single_config_prints_a_table(capsys):
    assert main(["--num-layers", "2", "--bidirectional", "--proj-size", "2", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "weight_hr_l1_reverse" in out and "pass" in out


def test_cli_fails_on_a_broken_gradient(monkeypatch, capsys):
    break_layer_gradient(monkeypatch, "weight_ih")
    assert main(["--steps", "2", "--batch", "2"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--num-layers", "0"], ["--proj-size", "4"],
                                  ["--unbatched", "--packed"]])
def test_cli_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
