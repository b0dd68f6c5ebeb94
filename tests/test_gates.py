"""npylstm.gates: recorded gates agree with the LSTM's own forward, stay in range, and plot."""
import subprocess
import sys

import numpy as np
import pytest

import npylstm
from npylstm.gates import plot_gates, record_gates

T, I, H = 9, 2, 5


def make_lstm(**options):
    lstm = npylstm.LSTM(I, H, dtype=np.float64, rng=0, **options)
    rng = np.random.default_rng(1)
    for p in lstm.parameters():                     # distinct, non-zero biases
        p.data[...] = rng.uniform(-1.5, 1.5, p.shape)
    return lstm


@pytest.fixture
def x():
    return np.random.default_rng(2).standard_normal((T, I))


@pytest.mark.parametrize("shape", ["(T, I)", "(T, 1, I)"])
def test_h_is_the_lstm_output(x, shape):
    lstm = make_lstm()
    rec = record_gates(lstm, x if shape == "(T, I)" else x[:, None])
    output, (h_n, c_n) = lstm(x[:, None])                          # (T, 1, H)
    np.testing.assert_allclose(rec["h"], output[:, 0], rtol=0, atol=1e-13, err_msg="h")
    np.testing.assert_allclose(rec["c"][-1], c_n[0, 0], rtol=0, atol=1e-13, err_msg="c_T")
    np.testing.assert_allclose(rec["h"], rec["o"] * np.tanh(rec["c"]), rtol=0, atol=1e-15,
                               err_msg="h = o * tanh(c)")
    c_prev = np.vstack([np.zeros((1, H)), rec["c"][:-1]])
    np.testing.assert_allclose(rec["c"], rec["f"] * c_prev + rec["i"] * rec["g"], rtol=0,
                               atol=1e-15, err_msg="c = f * c_prev + i * g")


def test_shapes_and_ranges(x):
    rec = record_gates(make_lstm(), 10 * x)                         # large inputs saturate gates
    assert set(rec) == {"i", "f", "g", "o", "c", "h"}
    for name in rec:
        assert rec[name].shape == (T, H), name
    for name in "ifo":
        assert np.all((rec[name] >= 0) & (rec[name] <= 1)), name
    for name in "gh":
        assert np.all(np.abs(rec[name]) <= 1), name
    # |c_t| <= |c_{t-1}| + 1 since f, i in [0, 1] and |g| <= 1; c_0 = 0.
    assert np.all(np.abs(rec["c"]) <= np.arange(1, T + 1)[:, None]), "c"


def test_initial_state_batch_first_and_projection(x):
    """hx is used; batch_first takes (1, T, I); with a projection h is (T, P) and c is (T, H)."""
    lstm = make_lstm(batch_first=True, proj_size=3)
    rng = np.random.default_rng(3)
    h0, c0 = rng.standard_normal((1, 1, 3)), rng.standard_normal((1, 1, H))
    rec = record_gates(lstm, x[None], (h0, c0))
    output, (h_n, c_n) = lstm(x[None], (h0, c0))                   # (1, T, P)
    assert rec["h"].shape == (T, 3) and rec["c"].shape == (T, H)
    np.testing.assert_allclose(rec["h"], output[0], rtol=0, atol=1e-13, err_msg="h")
    np.testing.assert_allclose(rec["c"][-1], c_n[0, 0], rtol=0, atol=1e-13, err_msg="c_T")


def test_deeper_lstm_records_layer_0_forward(x):
    """In a 2-layer bidirectional LSTM, the record is that of layer 0, forward direction."""
    deep = make_lstm(num_layers=2, bidirectional=True)
    single = npylstm.LSTM(I, H, dtype=np.float64)
    single.load_state_dict({k: v for k, v in deep.state_dict().items()
                            if k.endswith("_l0")}, strict=True)
    output, _ = single(x[:, None])
    np.testing.assert_allclose(record_gates(deep, x)["h"], output[:, 0], rtol=0, atol=1e-13)


def test_wrong_shape_is_a_value_error(x):
    lstm = make_lstm()
    for bad in (x[:, :1], np.stack([x, x], axis=1), x[None], x.ravel()):
        with pytest.raises(ValueError, match="record_gates: expected one sequence"):
            record_gates(lstm, bad)


def test_plot_writes_a_png(tmp_path, x):
    lstm = npylstm.LSTM(I, H, rng=0)                               # float32 works too
    path = plot_gates(lstm, x[:, None], tmp_path / "sub" / "gates.png")
    assert path == tmp_path / "sub" / "gates.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 400 and image.shape[1] > 400


def test_importing_does_not_import_matplotlib():
    code = ("import sys, npylstm, npylstm.gates; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("options", [dict(peephole=True), dict(peephole=True, input_forget=True),
                                     dict(ablate=("output_gate", "output_activation")),
                                     dict(ablate=("forget_gate",))])
def test_variant_gates_are_those_the_lstm_runs(x, options):
    """For a variant LSTM the record follows the variant's equations: h is the LSTM's output."""
    lstm = make_lstm(**options)
    rec = record_gates(lstm, x)
    output, _ = lstm(x[:, None])
    np.testing.assert_allclose(rec["h"], output[:, 0], rtol=0, atol=1e-13, err_msg=f"h {options}")
    if options.get("input_forget"):
        np.testing.assert_allclose(rec["f"], 1 - rec["i"], rtol=0, atol=1e-15, err_msg="f = 1 - i")
    for name in ("o", "f"):
        if f"{'output' if name == 'o' else 'forget'}_gate" in options.get("ablate", ()):
            assert np.all(rec[name] == 1), f"ablated gate {name} is not 1"


def test_units_are_ordered_by_change_at_the_marked_steps():
    from npylstm.gates import order_by_change
    c = np.zeros((4, 3))
    c[1:, 2] = 5.0          # unit 2 jumps at step 1
    c[3:, 0] = 1.0          # unit 0 jumps at step 3
    record = {"c": c}
    assert order_by_change(record, [1]).tolist()[0] == 2
    assert order_by_change(record, [3]).tolist()[0] == 0
    assert order_by_change(record, None).tolist() == [2, 0, 1]


@pytest.mark.parametrize("proj_size", [0, 3])
def test_every_layer_and_direction_reproduces_the_fast_path(x, proj_size):
    """The plain cell, layer by layer, against lstm_layer_forward: the outputs of layer k (from
    an LSTM cut to k + 1 layers) and the final states h_n, c_n, entry D*k + d. The reverse
    direction's rows are in input time order, so its final state is row 0."""
    L, D = 3, 2
    Hout = proj_size or H
    deep = make_lstm(num_layers=L, bidirectional=True, proj_size=proj_size)
    rng = np.random.default_rng(4)
    hx = (rng.standard_normal((D * L, 1, Hout)), rng.standard_normal((D * L, 1, H)))
    _, (h_n, c_n) = deep(x[:, None], hx)
    for k in range(L):
        cut = npylstm.LSTM(I, H, k + 1, bidirectional=True, proj_size=proj_size, dtype=np.float64)
        cut.load_state_dict({n: v for n, v in deep.state_dict().items()
                             if int(n.split("_l")[1].split("_")[0]) <= k})
        output, _ = cut(x[:, None], (hx[0][:D * (k + 1)], hx[1][:D * (k + 1)]))   # (T, 1, D*Hout)
        for d in range(D):
            rec = record_gates(deep, x, hx, layer=k, direction=d)
            where = f"layer {k}, direction {d}"
            assert rec["h"].shape == (T, Hout) and rec["c"].shape == (T, H)
            np.testing.assert_allclose(rec["h"], output[:, 0, d * Hout:(d + 1) * Hout], rtol=0,
                                       atol=1e-13, err_msg=f"h, {where}")
            last = T - 1 if d == 0 else 0                       # the step visited last
            np.testing.assert_allclose(rec["h"][last], h_n[D * k + d, 0], rtol=0, atol=1e-13,
                                       err_msg=f"h_n, {where}")
            np.testing.assert_allclose(rec["c"][last], c_n[D * k + d, 0], rtol=0, atol=1e-13,
                                       err_msg=f"c_n, {where}")


def test_the_reverse_direction_reads_its_input_backwards(x):
    """Row t of the reverse record is the forward record of the time-reversed input, row T-1-t."""
    lstm = make_lstm(bidirectional=True)
    forward_twin = npylstm.LSTM(I, H, dtype=np.float64)
    forward_twin.load_state_dict({n.replace("_reverse", ""): v for n, v in lstm.state_dict().items()
                                  if n.endswith("_reverse")})
    backward = record_gates(lstm, x, direction=1)
    flipped = record_gates(forward_twin, x[::-1])
    for name in backward:
        np.testing.assert_array_equal(backward[name], flipped[name][::-1], err_msg=name)


@pytest.mark.parametrize("where, options", [
    (dict(layer=2), dict(num_layers=2)),
    (dict(layer=-1), dict(num_layers=2)),
    (dict(layer=True), dict(num_layers=2)),
    (dict(layer=0.0), dict()),
    (dict(direction=1), dict(num_layers=2)),
    (dict(direction=2), dict(bidirectional=True)),
])
def test_a_layer_or_direction_out_of_range_is_a_value_error(x, where, options):
    name = next(iter(where))
    with pytest.raises(ValueError, match=f"{name} must be an integer in"):
        record_gates(make_lstm(**options), x, **where)
