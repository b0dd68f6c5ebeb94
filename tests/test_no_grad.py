"""npylstm.no_grad(): the same values as the cached forward, no cache, and the mode restored."""
import threading
import tracemalloc

import numpy as np
import pytest

import npylstm
from npylstm.model import LSTMRegressor, closed_loop_forecast


def max_rel(mine, ref):
    scale = np.max(np.abs(ref), initial=0.0)
    return np.max(np.abs(mine - ref), initial=0.0) / (scale if scale > 0 else 1.0)


def assert_same(name, mine, ref, exact):
    """Bit for bit when ``exact``, else within 1e-12 relative (float64); names the tensor."""
    assert mine.shape == ref.shape, f"{name}: shape under no_grad {mine.shape} vs cached {ref.shape}"
    if exact:
        assert np.array_equal(mine, ref), f"{name}: no_grad differs from the cached forward, " \
                                          f"max rel {max_rel(mine, ref):.3e}"
    else:
        err = max_rel(mine, ref)
        assert err <= 1e-12, f"{name}: no_grad vs cached forward, relative error {err:.3e}"


LSTM_OPTIONS = {
    "default": {},
    "no-bias": dict(bias=False),
    "layers": dict(num_layers=3),
    "bidirectional": dict(bidirectional=True),
    "proj": dict(proj_size=3),
    "batch_first": dict(batch_first=True),
    "unbatched": dict(unbatched=True),
    "lengths": dict(lengths=True),
    "lengths-bidirectional-proj": dict(lengths=True, bidirectional=True, proj_size=2, num_layers=2),
    "dropout-eval": dict(num_layers=2, dropout=0.5, eval=True),
    "dropout-train": dict(num_layers=2, dropout=0.5),
    "hx": dict(hx=True, num_layers=2, bidirectional=True),
    "wide-input": dict(I=70),
    # The variants (contract, "LSTM variants"), alone and with the other options.
    "peephole": dict(peephole=True),
    "input_forget": dict(input_forget=True),
    "clip": dict(clip=0.3),
    "ablate-all": dict(ablate=("input_gate", "forget_gate", "output_gate", "input_activation",
                               "output_activation")),
    "ablate-activations": dict(ablate=("input_activation", "output_activation"), peephole=True),
    "peephole-clip-lengths-bidirectional": dict(peephole=True, clip=0.5, lengths=True,
                                                bidirectional=True, num_layers=2, hx=True),
    "cifg-proj-lengths": dict(input_forget=True, peephole=True, proj_size=2, lengths=True),
}


def make_case(options, T=7, N=5, I=4, H=6, seed=0):
    opts = dict(options)
    unbatched, lengths, hx, evaluate = (opts.pop(k, False) for k in ("unbatched", "lengths", "hx", "eval"))
    I = opts.pop("I", I)
    lstm = npylstm.LSTM(I, H, dtype=np.float64, rng=seed, **opts)
    rng = np.random.default_rng(seed + 1)
    for p in lstm.parameters():
        p.data[...] = rng.uniform(-0.6, 0.6, p.shape)
    if evaluate:
        lstm.eval()
    if unbatched:
        x = rng.standard_normal((T, I))
    else:
        x = rng.standard_normal((N, T, I) if lstm.batch_first else (T, N, I))
    state = None
    if hx:
        D, L, Hout = lstm._D, lstm.num_layers, lstm._Hout
        state = (rng.standard_normal((D * L, N, Hout)), rng.standard_normal((D * L, N, H)))
    steps = None
    if lengths:
        steps = rng.integers(1, T + 1, N)
        steps[1] = T
    return lstm, x, state, steps


def run(lstm, x, hx, lengths):
    state = lstm._rng.bit_generator.state             # the same dropout masks both times
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    lstm._rng.bit_generator.state = state
    return out, h_n, c_n


@pytest.mark.parametrize("name", list(LSTM_OPTIONS))
def test_lstm_values_equal_the_cached_forward(name):
    lstm, x, hx, lengths = make_case(LSTM_OPTIONS[name])
    cached = run(lstm, x, hx, lengths)
    with npylstm.no_grad():
        free = run(lstm, x, hx, lengths)
    # The same arithmetic step by step, so bit for bit, except the projection
    # GEMM W_hr (o * tanh(c)): its operand has another row stride in the two
    # paths, and OpenBLAS may then sum in another order (differences < 1 ulp).
    exact = "proj" not in name
    for what, a, b in zip(("output", "h_n", "c_n"), free, cached):
        assert_same(what, a, b, exact=exact)
        assert_same(what, a, b, exact=False)


def test_lstm_no_grad_keeps_no_cache_and_backward_raises():
    lstm, x, _, _ = make_case({})
    out, _ = lstm(x)
    with npylstm.no_grad():
        lstm(x)
    assert lstm._cache is npylstm.module.NO_CACHE
    with pytest.raises(RuntimeError, match=r"no_grad"):
        lstm.backward(np.ones_like(out))
    lstm(x)                                                        # a cached forward again
    grad_x, _ = lstm.backward(np.ones_like(out))
    assert grad_x.shape == x.shape


def test_no_grad_forward_leaves_training_workspaces_alone():
    """A no_grad forward in between changes nothing for the next forward and backward."""
    lstm, x, _, _ = make_case({})
    out, _ = lstm(x)
    g = np.random.default_rng(3).standard_normal(out.shape)
    lstm.backward(g)
    expected = [p.grad.copy() for p in lstm.parameters()]
    lstm.zero_grad()
    lstm(x)
    with npylstm.no_grad():
        lstm(x[:3])                                                # another shape in between
    with pytest.raises(RuntimeError):
        lstm.backward(g)
    lstm(x)
    lstm.backward(g)
    for (name, p), e in zip(lstm.named_parameters(), expected):
        assert np.array_equal(p.grad, e), f"grad {name} after a no_grad forward in between"


@pytest.mark.parametrize("make,inputs,grad", [
    (lambda: npylstm.LSTMCell(3, 4, dtype=np.float64, rng=0),
     lambda r: (r.standard_normal((2, 3)), (r.standard_normal((2, 4)), r.standard_normal((2, 4)))),
     lambda out: (out[0],)),
    (lambda: npylstm.Linear(3, 2, dtype=np.float64, rng=0),
     lambda r: (r.standard_normal((4, 5, 3)),), lambda out: (out,)),
    (lambda: npylstm.MSELoss(reduction="none"),
     lambda r: (r.standard_normal((4, 3)), r.standard_normal((4, 3))), lambda out: (out,)),
    (lambda: LSTMRegressor(3, 5, 2, num_layers=2, dtype=np.float64, rng=0),
     lambda r: (r.standard_normal((6, 4, 3)),), lambda out: (out,)),
], ids=["LSTMCell", "Linear", "MSELoss", "LSTMRegressor"])
def test_other_modules(make, inputs, grad):
    module = make()
    args = inputs(np.random.default_rng(1))
    cached = module(*args)
    with npylstm.no_grad():
        free = module(*args)
    as_list = lambda out: list(out) if isinstance(out, tuple) else [out]
    for a, b in zip(as_list(free), as_list(cached)):
        assert_same(type(module).__name__, np.asarray(a), np.asarray(b), exact=True)
    with pytest.raises(RuntimeError, match=r"most recent forward ran under npylstm.no_grad"):
        module.backward(*grad(cached))
    module(*args)
    module.backward(*grad(cached))                                 # works again after a cached forward


def test_regressor_with_lengths_under_no_grad():
    model = LSTMRegressor(2, 5, 1, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((6, 4, 2))
    lengths = np.array([6, 2, 4, 1])
    cached = model(x, lengths=lengths)
    with npylstm.no_grad():
        free = model(x, lengths=lengths)
    assert_same("prediction", free, cached, exact=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(cached))


def test_nesting_and_exceptions_restore_the_mode():
    assert npylstm.is_grad_enabled()
    with npylstm.no_grad():
        assert not npylstm.is_grad_enabled()
        with npylstm.no_grad():
            assert not npylstm.is_grad_enabled()
        assert not npylstm.is_grad_enabled()                       # the inner exit restores "off"
    assert npylstm.is_grad_enabled()

    with pytest.raises(KeyError):
        with npylstm.no_grad():
            raise KeyError("boom")
    assert npylstm.is_grad_enabled()

    guard = npylstm.no_grad()                                      # one object entered twice
    with guard:
        with guard:
            assert not npylstm.is_grad_enabled()
        assert not npylstm.is_grad_enabled()
    assert npylstm.is_grad_enabled()


def test_exception_inside_a_forward_restores_the_mode():
    lstm = npylstm.LSTM(3, 4)
    with pytest.raises(ValueError):
        with npylstm.no_grad():
            lstm(np.zeros((5, 2, 7)))                              # wrong input size
    assert npylstm.is_grad_enabled()
    out, _ = lstm(np.zeros((5, 2, 3)))
    lstm.backward(np.ones_like(out))


def test_decorator():
    @npylstm.no_grad()
    def infer():
        return npylstm.is_grad_enabled()

    assert infer() is False
    assert npylstm.is_grad_enabled()


def test_mode_is_per_thread():
    seen = []
    with npylstm.no_grad():
        t = threading.Thread(target=lambda: seen.append(npylstm.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_eval_keeps_its_meaning():
    """eval() turns dropout off and keeps the cache; no_grad does not touch `training`."""
    lstm, x, _, _ = make_case(dict(num_layers=2, dropout=0.5))
    lstm.eval()
    out, _ = lstm(x)
    lstm.backward(np.ones_like(out))                               # eval still caches
    lstm.train()
    with npylstm.no_grad():
        assert lstm.training
        a, _ = lstm(x)
        b, _ = lstm(x)
    assert not np.array_equal(a, b), "dropout must stay on under no_grad in training mode"


def test_train_validation_and_forecast_run_under_no_grad():
    cfg = npylstm.train.TrainConfig(epochs=2, hidden_size=8, num_points=80, seq_len=10,
                                    dtype="float64", forecast=3, log_every=0)
    res = npylstm.train.train(cfg)
    with pytest.raises(RuntimeError, match="no_grad"):
        res.model.backward(np.ones((cfg.num_valid, 1)))
    # The forecast is unchanged: each step is a fresh zero-state window, as in training.
    window = np.sin(2 * np.pi * np.arange(10) / 7.0)
    expected, w = [], window.copy()
    for _ in range(4):
        expected.append(res.model(w[:, None, None])[0, 0])
        w = np.append(w[1:], expected[-1])
    assert np.array_equal(closed_loop_forecast(res.model, window, 4), np.array(expected))


def test_peak_memory_is_lower_than_with_the_cache():
    """tracemalloc on a medium shape: the cached forward holds O(T N H); no_grad O(N H) + output."""
    T, N, I, H = 60, 32, 16, 64

    def peak(no_grad):
        lstm = npylstm.LSTM(I, H, dtype=np.float64, rng=0)
        x = np.random.default_rng(0).standard_normal((T, N, I))
        tracemalloc.start()
        tracemalloc.reset_peak()
        if no_grad:
            with npylstm.no_grad():
                out, _ = lstm(x)
        else:
            out, _ = lstm(x)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size, out.nbytes

    cached, out_bytes = peak(False)
    free, _ = peak(True)
    per_step = 8 * N * (4 * H + I + H + 1)                         # one step's buffers, float64
    # The cache alone is about T * N * (6H + I + H + 1) floats, 12x the output here.
    assert free < cached / 3, f"peak under no_grad {free} B, cached {cached} B"
    assert free < 2 * out_bytes + 20 * per_step, \
        f"peak under no_grad {free} B for an output of {out_bytes} B: not O(N H) + output"
