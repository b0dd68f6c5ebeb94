"""Module behaviour: names and order as torch, state_dict, gradient accumulation,
zero_grad, train/eval, and the default initialisation."""
import numpy as np
import pytest
import torch

import npylstm
from helpers import randomize

pytestmark = pytest.mark.reference


def lstm_options():
    return [dict(), dict(num_layers=3), dict(bidirectional=True), dict(proj_size=2),
            dict(bias=False), dict(num_layers=2, bidirectional=True, proj_size=3, bias=False)]


@pytest.mark.parametrize("opts", lstm_options(), ids=str)
def test_lstm_names_order_and_shapes_match_torch(opts):
    mine = npylstm.LSTM(3, 5, **opts)
    theirs = torch.nn.LSTM(3, 5, **opts)
    assert [(n, p.shape) for n, p in mine.named_parameters()] == \
           [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert [p for _, p in mine.named_parameters()] == mine.parameters()


def test_cell_and_linear_names_match_torch():
    for mine, theirs in [(npylstm.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4)),
                         (npylstm.LSTMCell(3, 4, bias=False), torch.nn.LSTMCell(3, 4, bias=False)),
                         (npylstm.Linear(3, 4), torch.nn.Linear(3, 4)),
                         (npylstm.Linear(3, 4, bias=False), torch.nn.Linear(3, 4, bias=False))]:
        assert [(n, p.shape) for n, p in mine.named_parameters()] == \
               [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]


class Net(npylstm.Module):
    def __init__(self):
        super().__init__()
        self.lstm = npylstm.LSTM(2, 3, 2, dropout=0.5, dtype=np.float64, rng=0)
        self.linear = npylstm.Linear(3, 1, dtype=np.float64, rng=0)


def test_submodules_give_dotted_names_and_propagate_train_eval():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names[0] == "lstm.weight_ih_l0" and names[-2:] == ["linear.weight", "linear.bias"]
    assert list(net.state_dict()) == names
    assert net.training and net.lstm.training
    assert net.eval() is net
    assert not net.training and not net.lstm.training and not net.linear.training
    net.train()
    assert net.lstm.training and net.linear.training
    net.train(False)
    assert not net.lstm.training


def test_state_dict_is_a_copy_and_round_trips():
    net = Net()
    state = net.state_dict()
    state["linear.bias"][...] = 42.0
    assert not np.any(net.linear.bias.data == 42.0)
    other = Net()
    randomize(other, np.random.default_rng(1))
    other.load_state_dict(net.state_dict())
    for (name, a), b in zip(net.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    x = np.random.default_rng(2).standard_normal((3, 2, 2))
    net.eval(), other.eval()
    np.testing.assert_array_equal(net.lstm(x)[0], other.lstm(x)[0])


def test_load_state_dict_casts_to_module_dtype_and_accepts_lists():
    lstm = npylstm.LSTM(2, 3)                                   # float32
    state = {k: np.full(v.shape, 0.1, np.float64) for k, v in lstm.state_dict().items()}
    state["weight_hh_l0"] = np.full((12, 3), 0.25).tolist()     # anything np.asarray takes
    lstm.load_state_dict(state)
    assert all(p.data.dtype == np.float32 for p in lstm.parameters())
    assert lstm.bias_ih_l0.data[0] == np.float32(0.1)
    assert np.all(lstm.weight_hh_l0.data == 0.25)


def test_load_state_dict_from_torch():
    theirs = torch.nn.LSTM(2, 3, bidirectional=True, proj_size=1)
    mine = npylstm.LSTM(2, 3, bidirectional=True, proj_size=1, dtype=np.float64)
    mine.load_state_dict(theirs.state_dict())                    # torch tensors go through asarray
    for name, p in theirs.named_parameters():
        np.testing.assert_array_equal(getattr(mine, name).data, p.detach().numpy().astype(np.float64))


def _loss_grads(lstm, x, g):
    lstm.zero_grad()
    lstm(x)
    lstm.backward(g)
    return [p.grad.copy() for p in lstm.parameters()]


def test_backward_twice_after_one_forward_doubles_the_gradients():
    lstm = npylstm.LSTM(2, 3, 2, bidirectional=True, proj_size=2, dtype=np.float64, rng=0)
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 4))
    once = _loss_grads(lstm, x, g)
    gx1, (gh1, gc1) = lstm.backward(g)                           # a second backward, same forward
    twice = [p.grad.copy() for p in lstm.parameters()]
    for a, b in zip(once, twice):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-14, atol=1e-15)
    gx2, _ = lstm.backward(g)                                    # input grads are not accumulated
    np.testing.assert_array_equal(gx1, gx2)


def test_two_forward_backward_without_zero_grad_accumulate():
    lstm = npylstm.LSTM(2, 3, dtype=np.float64, rng=0)
    rng = np.random.default_rng(1)
    xa, ga = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 3))
    xb, gb = rng.standard_normal((3, 1, 2)), rng.standard_normal((3, 1, 3))
    grads_a, grads_b = _loss_grads(lstm, xa, ga), _loss_grads(lstm, xb, gb)
    lstm.zero_grad()
    lstm(xa)
    lstm.backward(ga)
    lstm(xb)
    lstm.backward(gb)
    for p, a, b in zip(lstm.parameters(), grads_a, grads_b):
        np.testing.assert_allclose(p.grad, a + b, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("make", [lambda: npylstm.LSTMCell(2, 3, dtype=np.float64),
                                  lambda: npylstm.Linear(2, 3, dtype=np.float64)],
                         ids=["cell", "linear"])
def test_cell_and_linear_accumulate(make):
    m = make()
    x = np.random.default_rng(0).standard_normal((2, 2))
    m.zero_grad()
    if isinstance(m, npylstm.LSTMCell):
        y, _ = m(x, (x[:, :1] + np.zeros((2, 3)), x[:, 1:] + np.zeros((2, 3))))  # h_0 != 0
    else:
        y = m(x)
    m.backward(np.ones_like(y))
    once = [p.grad.copy() for p in m.parameters()]
    m.backward(np.ones_like(y))
    for p, a in zip(m.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * a, rtol=1e-14)
        assert np.any(a != 0)


def test_zero_grad():
    net = Net()
    net.lstm(np.ones((3, 2, 2)))
    net.lstm.backward(np.ones((3, 2, 3)))
    assert any(np.any(p.grad != 0) for p in net.parameters())
    net.zero_grad()
    for p in net.parameters():
        assert np.all(p.grad == 0) and p.grad.shape == p.data.shape and p.grad.dtype == p.data.dtype


def test_parameter_starts_with_zero_grad():
    p = npylstm.Parameter(np.arange(6.0).reshape(2, 3))
    assert p.shape == (2, 3) and p.dtype == np.float64
    assert np.all(p.grad == 0) and p.grad.shape == (2, 3)


# ----------------------------------------------------------- initialisation

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_default_init_is_uniform_in_torch_bound(dtype):
    H = 50
    lstm = npylstm.LSTM(10, H, 2, bidirectional=True, proj_size=20, dtype=dtype, rng=0)
    bound = 1 / np.sqrt(H)
    values = np.concatenate([p.data.ravel() for p in lstm.parameters()])
    assert all(p.data.dtype == dtype and p.grad.dtype == dtype for p in lstm.parameters())
    assert np.all(np.abs(values) <= bound)
    assert values.min() < -0.99 * bound and values.max() > 0.99 * bound
    assert abs(values.mean()) < 0.01 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.01 * bound      # std of U(-b, b)
    # every parameter is drawn, none left at zero or shared
    datas = [p.data for p in lstm.parameters()]
    assert all(d.std() > 0.4 * bound for d in datas)
    assert not np.array_equal(lstm.bias_ih_l0.data, lstm.bias_hh_l0.data)


def test_cell_and_linear_default_init():
    cell = npylstm.LSTMCell(10, 40, rng=0)
    bound = 1 / np.sqrt(40)
    for p in cell.parameters():
        assert np.all(np.abs(p.data) <= bound) and p.data.std() > 0.4 * bound
    lin = npylstm.Linear(64, 30, rng=0)
    bound = 1 / np.sqrt(64)
    for p in lin.parameters():
        assert np.all(np.abs(p.data) <= bound) and p.data.std() > 0.4 * bound
    assert lin.weight.data.dtype == np.float32


@pytest.mark.parametrize("make", [lambda rng: npylstm.LSTM(3, 4, 2, rng=rng),
                                  lambda rng: npylstm.LSTMCell(3, 4, rng=rng),
                                  lambda rng: npylstm.Linear(3, 4, rng=rng)],
                         ids=["lstm", "cell", "linear"])
def test_rng_seeds_the_initialisation(make):
    a, b, c = make(5), make(5), make(6)
    d = make(np.random.default_rng(5))
    for pa, pb, pc, pd in zip(a.parameters(), b.parameters(), c.parameters(), d.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        np.testing.assert_array_equal(pa.data, pd.data)
        assert not np.array_equal(pa.data, pc.data)


def test_repr_mentions_options():
    assert repr(npylstm.LSTM(3, 4)) == "LSTM(3, 4)"
    assert "bidirectional=True" in repr(npylstm.LSTM(3, 4, bidirectional=True))


@pytest.mark.parametrize("proj_size", [0, 2])
def test_results_survive_the_next_call_and_inputs_are_untouched(proj_size):
    """Workspaces are reused between calls: nothing handed out may be overwritten later,
    and nothing handed in may be modified."""
    lstm = npylstm.LSTM(3, 4, 2, bidirectional=True, proj_size=proj_size, dtype=np.float64, rng=0)
    rng = np.random.default_rng(0)
    Hout = proj_size or 4
    x = rng.standard_normal((4, 3, 3))
    hx = (rng.standard_normal((4, 3, Hout)), rng.standard_normal((4, 3, 4)))
    g_out = rng.standard_normal((4, 3, 2 * Hout))
    g_hx = (rng.standard_normal((4, 3, Hout)), rng.standard_normal((4, 3, 4)))
    handed_in = [a.copy() for a in (x, *hx, g_out, *g_hx)]
    out, (h_n, c_n) = lstm(x, hx)
    grad_x, (grad_h0, grad_c0) = lstm.backward(g_out, g_hx)
    results = [a.copy() for a in (out, h_n, c_n, grad_x, grad_h0, grad_c0)]
    for a, b in zip((x, *hx, g_out, *g_hx), handed_in):
        np.testing.assert_array_equal(a, b)
    out2, _ = lstm(x[::-1] * 2, (hx[0] * 3, hx[1]))               # a different second call
    lstm.backward(out2)
    for a, b in zip((out, h_n, c_n, grad_x, grad_h0, grad_c0), results):
        np.testing.assert_array_equal(a, b)
    out3, _ = lstm(x, hx)                                           # and it is deterministic
    np.testing.assert_array_equal(out3, results[0])
