"""Every error path raises the type the contract names, with a useful message."""
import re

import numpy as np
import pytest

import npylstm


def raises_shape(expected, received):
    """pytest.raises(ValueError) whose message names the expected and received shape."""
    return pytest.raises(ValueError, match=re.escape(expected) + ".*" + re.escape(str(received)))


# ------------------------------------------------------------------- LSTM

@pytest.mark.parametrize("shape,expected", [
    ((4, 2, 5), "(T, N, 3)"),          # wrong input size
    ((4, 2, 3, 1), "(T, N, 3)"),       # rank 4
    ((4,), "3"),                       # rank 1
    ((4, 5), "(T, 3)"),                # unbatched, wrong size
])
def test_lstm_wrong_input(shape, expected):
    lstm = npylstm.LSTM(3, 4)
    with raises_shape(expected, shape):
        lstm(np.zeros(shape))


def test_lstm_batch_first_wrong_input_names_layout():
    with raises_shape("(N, T, 3)", (2, 4, 2)):
        npylstm.LSTM(3, 4, batch_first=True)(np.zeros((2, 4, 2)))


@pytest.mark.parametrize("shape", [(0, 2, 3), (3, 0, 3), (0, 3)])
def test_lstm_empty_input(shape):
    with pytest.raises(ValueError):
        npylstm.LSTM(3, 4)(np.zeros(shape))


@pytest.mark.parametrize("which,h_shape,c_shape,bad", [
    ("h_0", (4, 2, 2), (4, 2, 5), (4, 2, 2)),          # h_0 must have Hout = proj_size = 3
    ("h_0", (2, 2, 3), (4, 2, 5), (2, 2, 3)),          # D*L = 4 expected
    ("h_0", (4, 3, 3), (4, 2, 5), (4, 3, 3)),          # N = 2 expected
    ("c_0", (4, 2, 3), (4, 2, 3), (4, 2, 3)),          # c_0 has H = 5, not Hout
    ("c_0", (4, 2, 3), (4, 5), (4, 5)),                # rank
])
def test_lstm_wrong_hx(which, h_shape, c_shape, bad):
    lstm = npylstm.LSTM(3, 5, 2, bidirectional=True, proj_size=3)
    expected = "(4, 2, 3)" if which == "h_0" else "(4, 2, 5)"
    with pytest.raises(ValueError, match=re.escape(which)) as info:
        lstm(np.zeros((4, 2, 3)), (np.zeros(h_shape), np.zeros(c_shape)))
    assert expected in str(info.value) and str(bad) in str(info.value)


def test_lstm_unbatched_wrong_hx():
    lstm = npylstm.LSTM(3, 4)
    with raises_shape("(1, 4)", (1, 1, 4)):
        lstm(np.zeros((5, 3)), (np.zeros((1, 1, 4)), np.zeros((1, 4))))


@pytest.mark.parametrize("unbatched", [False, True])
def test_lstm_wrong_grad_output(unbatched):
    lstm = npylstm.LSTM(3, 4, bidirectional=True)
    x = np.zeros((5, 3)) if unbatched else np.zeros((5, 2, 3))
    hx = (np.zeros((2, 4)), np.zeros((2, 4))) if unbatched else None   # see test_hx_none_is_zero_state
    out, _ = lstm(x, hx)
    bad = out.shape[:-1] + (4,)
    with raises_shape(str(out.shape), bad):
        lstm.backward(np.zeros(bad))
    with pytest.raises(ValueError):
        lstm.backward(np.zeros(out.shape[1:]))


def test_lstm_wrong_grad_output_batch_first():
    lstm = npylstm.LSTM(3, 4, batch_first=True)
    out, _ = lstm(np.zeros((2, 5, 3)))                 # (N, T, Hout) = (2, 5, 4)
    with raises_shape("(2, 5, 4)", (5, 2, 4)):
        lstm.backward(np.zeros((5, 2, 4)))


@pytest.mark.parametrize("which", ["grad_h_n", "grad_c_n"])
def test_lstm_wrong_grad_hx(which):
    lstm = npylstm.LSTM(3, 5, proj_size=2)
    out, (h_n, c_n) = lstm(np.zeros((4, 2, 3)))
    g_h, g_c = np.zeros(h_n.shape), np.zeros(c_n.shape)
    if which == "grad_h_n":
        g_h, expected, bad = np.zeros(c_n.shape), h_n.shape, c_n.shape
    else:
        g_c, expected, bad = np.zeros(h_n.shape), c_n.shape, h_n.shape
    with pytest.raises(ValueError, match=which) as info:
        lstm.backward(np.zeros(out.shape), (g_h, g_c))
    assert str(expected) in str(info.value) and str(bad) in str(info.value)


@pytest.mark.parametrize("kwargs", [
    dict(input_size=0), dict(hidden_size=0), dict(input_size=-1), dict(num_layers=0),
    dict(proj_size=-1), dict(proj_size=4), dict(proj_size=5), dict(dropout=-0.1),
    dict(dropout=1.5), dict(dropout=float("nan")), dict(dtype=np.int32), dict(dtype=np.float16),
    dict(input_size=2.5), dict(hidden_size=True),
])
def test_lstm_bad_constructor_arguments(kwargs):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError):
        npylstm.LSTM(**args)


@pytest.mark.parametrize("dropout", [0.0, 1.0, 0, 1])
def test_lstm_dropout_bounds_are_valid(dropout):
    lstm = npylstm.LSTM(3, 4, 2, dropout=dropout, dtype=np.float64, rng=0)
    assert lstm.dropout == dropout and isinstance(lstm.dropout, float)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out, _ = lstm(x)
    assert out.shape == (5, 2, 4) and np.all(np.isfinite(out))
    if dropout == 1:     # layer 1 sees only zeros: its output is that of a zero input
        lstm.eval()
        lstm.weight_ih_l1.data[...] = 0
        np.testing.assert_array_equal(out, lstm(x)[0])


@pytest.mark.parametrize("make", [
    lambda: npylstm.LSTMCell(0, 4), lambda: npylstm.LSTMCell(3, 0),
    lambda: npylstm.LSTMCell(3, 4, dtype=np.int64),
    lambda: npylstm.Linear(0, 4), lambda: npylstm.Linear(3, 0),
    lambda: npylstm.Linear(3, 4, dtype=np.float16),
    lambda: npylstm.MSELoss("average"),
])
def test_other_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("module,args", [
    (lambda: npylstm.LSTM(3, 4), (np.zeros((2, 1, 4)),)),
    (lambda: npylstm.LSTMCell(3, 4), (np.zeros((1, 4)),)),
    (lambda: npylstm.Linear(3, 4), (np.zeros((1, 4)),)),
    (lambda: npylstm.MSELoss(), ()),
], ids=["LSTM", "LSTMCell", "Linear", "MSELoss"])
def test_backward_before_forward(module, args):
    with pytest.raises(RuntimeError, match="before forward"):
        module().backward(*args)


# ----------------------------------------------------- cell, linear, loss

def test_cell_wrong_shapes():
    cell = npylstm.LSTMCell(3, 4)
    with raises_shape("(N, 3)", (2, 5)):
        cell(np.zeros((2, 5)))
    with raises_shape("(3,)", (5,)):
        cell(np.zeros(5))
    with pytest.raises(ValueError, match="h_0"):
        cell(np.zeros((2, 3)), (np.zeros((2, 5)), np.zeros((2, 4))))
    with pytest.raises(ValueError, match="c_0"):
        cell(np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4))))
    with pytest.raises(ValueError, match="h_0"):
        cell(np.zeros(3), (np.zeros((1, 4)), np.zeros((1, 4))))
    cell(np.zeros((2, 3)))
    with raises_shape("(2, 4)", (4,)):
        cell.backward(np.zeros(4))
    with pytest.raises(ValueError, match="grad_c1"):
        cell.backward(np.zeros((2, 4)), np.zeros((2, 3)))


def test_linear_wrong_shapes():
    lin = npylstm.Linear(3, 2)
    with raises_shape("(..., 3)", (4, 2)):
        lin(np.zeros((4, 2)))
    with pytest.raises(ValueError):
        lin(np.float32(1.0))
    lin(np.zeros((4, 3)))
    with raises_shape("(4, 2)", (4, 3)):
        lin.backward(np.zeros((4, 3)))


def test_mse_wrong_grad_shape():
    crit = npylstm.MSELoss()
    crit(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError):
        crit.backward(np.ones((3, 2)))
    crit = npylstm.MSELoss("none")
    crit(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError):
        crit.backward(np.ones(()))


# -------------------------------------------------------- load_state_dict

def test_load_state_dict_missing_key():
    lstm = npylstm.LSTM(2, 3)
    state = lstm.state_dict()
    del state["bias_hh_l0"]
    with pytest.raises(ValueError, match="bias_hh_l0"):
        lstm.load_state_dict(state)


def test_load_state_dict_unexpected_key():
    lstm = npylstm.LSTM(2, 3)
    state = dict(lstm.state_dict(), weight_hr_l0=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="weight_hr_l0"):
        lstm.load_state_dict(state)


def test_load_state_dict_wrong_shape_names_the_key():
    lstm = npylstm.LSTM(2, 3)
    before = lstm.state_dict()
    state = dict(before, weight_hh_l0=np.zeros((12, 4)))
    with pytest.raises(ValueError, match="weight_hh_l0"):
        lstm.load_state_dict(state)
    with pytest.raises(ValueError, match="weight_hh_l0"):
        lstm.load_state_dict({"weight_hh_l0": np.zeros((3, 12))}, strict=False)


def test_load_state_dict_non_strict_ignores_unknown_and_missing():
    lin = npylstm.Linear(2, 3, dtype=np.float64)
    bias = lin.bias.data.copy()
    lin.load_state_dict({"weight": np.ones((3, 2)), "something.else": np.zeros(7)}, strict=False)
    assert np.all(lin.weight.data == 1) and np.array_equal(lin.bias.data, bias)


# ------------------------------------------------------------ optimisers

@pytest.mark.parametrize("make", [
    lambda ps: npylstm.Adam(ps, lr=-1.0), lambda ps: npylstm.Adam(ps, betas=(1.0, 0.9)),
    lambda ps: npylstm.Adam(ps, eps=-1.0), lambda ps: npylstm.Adam(ps, weight_decay=-1.0),
    lambda ps: npylstm.SGD(ps, lr=-0.1), lambda ps: npylstm.SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: npylstm.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: npylstm.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda ps: npylstm.Adam([]),
])
def test_optimizer_bad_arguments(make):
    with pytest.raises(ValueError):
        make(npylstm.Linear(2, 2).parameters())


def test_optimizer_load_state_dict_for_other_parameters():
    opt = npylstm.Adam(npylstm.Linear(2, 2).parameters())
    with pytest.raises(ValueError):
        opt.load_state_dict(npylstm.Adam(npylstm.LSTM(2, 2).parameters()).state_dict())


# ------------------------------------------------- bad input found by hand (issue 11)

@pytest.mark.parametrize("hx", [
    (np.zeros((1, 2, 4)),),                                        # one element: used to be an IndexError
    (np.zeros((1, 2, 4)), np.zeros((1, 2, 4)), np.zeros((1, 2, 4))),
    np.zeros((1, 2, 4)),                                           # an array, not a pair
])
def test_lstm_hx_must_be_a_pair(hx):
    with pytest.raises(ValueError, match=re.escape("hx must be a pair (h_0, c_0)")):
        npylstm.LSTM(3, 4)(np.zeros((5, 2, 3)), hx)


def test_cell_hx_must_be_a_pair():
    with pytest.raises(ValueError, match=re.escape("hx must be a pair (h_0, c_0)")):
        npylstm.LSTMCell(3, 4)(np.zeros((2, 3)), (np.zeros((2, 4)),))


def _complex(shape):
    return np.zeros(shape) + 0.5j


@pytest.mark.parametrize("call", [
    lambda: npylstm.LSTM(3, 4)(_complex((5, 2, 3))),
    lambda: npylstm.LSTM(3, 4)(np.zeros((5, 2, 3)), (_complex((1, 2, 4)), np.zeros((1, 2, 4)))),
    lambda: npylstm.LSTM(3, 4)(np.zeros((5, 2, 3)), (np.zeros((1, 2, 4)), _complex((1, 2, 4)))),
    lambda: npylstm.LSTMCell(3, 4)(_complex((2, 3))),
    lambda: npylstm.LSTMCell(3, 4)(np.zeros((2, 3)), (_complex((2, 4)), np.zeros((2, 4)))),
    lambda: npylstm.Linear(3, 2)(_complex((2, 3))),
    lambda: npylstm.model.LSTMRegressor(3, 4, 1)(_complex((5, 2, 3))),
    lambda: npylstm.MSELoss()(_complex((2, 3)), np.zeros((2, 3))),
    lambda: npylstm.MSELoss()(np.zeros((2, 3)), _complex((2, 3))),
], ids=["lstm-input", "lstm-h0", "lstm-c0", "cell-input", "cell-h0", "linear", "regressor",
        "mse-input", "mse-target"])
def test_complex_input_is_refused(call):
    """np.asarray(complex, float32) drops the imaginary part with only a ComplexWarning."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")                             # a ComplexWarning would fail here
        with pytest.raises(ValueError, match="complex"):
            call()


@pytest.mark.parametrize("call", [
    lambda: _backward_after(npylstm.Linear(3, 2), np.zeros((2, 3)), _complex((2, 2))),
    lambda: _backward_after(npylstm.LSTMCell(3, 4), np.zeros((2, 3)), _complex((2, 4))),
], ids=["linear", "cell"])
def test_complex_upstream_gradient_is_refused(call):
    with pytest.raises(ValueError, match="complex"):
        call()


def _backward_after(module, x, grad):
    out = module(x)
    return module.backward(grad)
