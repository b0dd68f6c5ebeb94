"""Adam, SGD and clip_grad_norm_ against torch (float64), and exact resumption."""
import copy

import numpy as np
import pytest
import torch

import npylstm
from helpers import assert_close, randomize, torch_twin

pytestmark = pytest.mark.reference


class Pair:
    """A small LSTM + Linear regressor in npylstm and its torch twin, on fixed data."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.lstm = npylstm.LSTM(2, 4, dtype=np.float64, rng=seed)
        self.linear = npylstm.Linear(4, 1, dtype=np.float64, rng=seed)
        randomize(self.lstm, rng)
        randomize(self.linear, rng)
        self.t_lstm = torch_twin(self.lstm, torch.nn.LSTM(2, 4))
        self.t_linear = torch_twin(self.linear, torch.nn.Linear(4, 1))
        self.x = rng.standard_normal((5, 3, 2))
        self.y = rng.standard_normal((3, 1))
        self.crit = npylstm.MSELoss()

    def params(self):
        return self.lstm.parameters() + self.linear.parameters()

    def torch_params(self):
        return list(self.t_lstm.parameters()) + list(self.t_linear.parameters())

    def grads(self):
        """One forward and backward of the mean squared error (into p.grad)."""
        out, _ = self.lstm(self.x)
        loss = self.crit(self.linear(out[-1]), self.y)
        grad_out = np.zeros_like(out)
        grad_out[-1] = self.linear.backward(self.crit.backward())
        self.lstm.backward(grad_out)
        return float(loss)

    def torch_grads(self):
        out, _ = self.t_lstm(torch.from_numpy(self.x))
        loss = torch.nn.functional.mse_loss(self.t_linear(out[-1]), torch.from_numpy(self.y))
        loss.backward()
        return float(loss.detach())

    def state_dict(self):
        return {**{f"lstm.{k}": v for k, v in self.lstm.state_dict().items()},
                **{f"linear.{k}": v for k, v in self.linear.state_dict().items()}}

    def load_state_dict(self, state):
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})


def run_beside_torch(make_opt, make_torch_opt, steps=25, tol=1e-10):
    pair = Pair()
    opt, t_opt = make_opt(pair.params()), make_torch_opt(pair.torch_params())
    for step in range(steps):
        opt.zero_grad()
        t_opt.zero_grad()
        loss, t_loss = pair.grads(), pair.torch_grads()
        assert abs(loss - t_loss) <= tol * abs(t_loss), f"loss at step {step}: {loss} vs {t_loss}"
        opt.step()
        t_opt.step()
    names = [n for n, _ in pair.lstm.named_parameters()] + ["linear.weight", "linear.bias"]
    for name, p, tp in zip(names, pair.params(), pair.torch_params()):
        assert_close(f"{name} after {steps} steps", p.data, tp, tol)
    return pair, opt


ADAM_OPTIONS = {
    "default": dict(lr=0.01),
    "betas-eps": dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
    "weight_decay": dict(lr=0.01, weight_decay=0.1),
    "amsgrad": dict(lr=0.01, amsgrad=True),
    "maximize": dict(lr=0.01, maximize=True),
    "all": dict(lr=0.01, weight_decay=0.05, amsgrad=True, maximize=True),
}


@pytest.mark.parametrize("name", list(ADAM_OPTIONS))
def test_adam_matches_torch(name):
    kw = ADAM_OPTIONS[name]
    run_beside_torch(lambda ps: npylstm.Adam(ps, **kw),
                     lambda ps: torch.optim.Adam(ps, **kw, foreach=False))


SGD_OPTIONS = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "maximize": dict(lr=0.05, momentum=0.5, maximize=True),
    "all": dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.01, maximize=True),
}


@pytest.mark.parametrize("name", list(SGD_OPTIONS))
def test_sgd_matches_torch(name):
    kw = SGD_OPTIONS[name]
    run_beside_torch(lambda ps: npylstm.SGD(ps, **kw),
                     lambda ps: torch.optim.SGD(ps, **kw, foreach=False))


def test_adam_amsgrad_with_synthetic_gradients():
    """Fixed gradients that shrink, so the running maximum of v really matters."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal((3, 4))
    p = npylstm.Parameter(start.copy())
    tp = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opt = npylstm.Adam([p], lr=0.1, amsgrad=True, weight_decay=0.01)
    t_opt = torch.optim.Adam([tp], lr=0.1, amsgrad=True, weight_decay=0.01, foreach=False)
    for step in range(30):
        g = rng.standard_normal((3, 4)) * (10.0 if step < 3 else 0.1)
        p.grad[...] = g
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
        t_opt.step()
    assert_close("param", p.data, tp, 1e-12)
    assert_close("max_exp_avg_sq", opt.state[0]["max_exp_avg_sq"],
                 t_opt.state[tp]["max_exp_avg_sq"], 1e-12)


@pytest.mark.parametrize("make_opt", [
    lambda ps: npylstm.Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.01),
    lambda ps: npylstm.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
], ids=["adam", "sgd"])
def test_state_dict_round_trip_resumes_exactly(make_opt):
    straight = Pair()
    opt = make_opt(straight.params())
    for _ in range(20):
        opt.zero_grad()
        straight.grads()
        opt.step()

    first = Pair()
    opt = make_opt(first.params())
    for _ in range(10):
        opt.zero_grad()
        first.grads()
        opt.step()
    model_state, opt_state = first.state_dict(), copy.deepcopy(opt.state_dict())
    # as if saved to disk: plain arrays and numbers
    saved = {k: np.array(v) for k, v in model_state.items()}

    resumed = Pair()
    for p in resumed.params():                          # a different start, to be overwritten
        p.data[...] = 0.123
    resumed.load_state_dict(saved)
    opt = make_opt(resumed.params())
    opt.load_state_dict(opt_state)
    for _ in range(10):
        opt.zero_grad()
        resumed.grads()
        opt.step()
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(b, a, err_msg=name)


def test_optimizer_state_dict_is_a_copy():
    pair = Pair()
    opt = npylstm.Adam(pair.params(), lr=0.01)
    pair.grads()
    opt.step()
    state = opt.state_dict()
    before = state["state"][0]["exp_avg"].copy()
    pair.grads()
    opt.step()
    np.testing.assert_array_equal(state["state"][0]["exp_avg"], before)
    assert state["param_groups"][0]["lr"] == 0.01


def test_optimizer_zero_grad():
    pair = Pair()
    opt = npylstm.SGD(pair.params(), lr=0.1)
    pair.grads()
    assert any(np.any(p.grad != 0) for p in pair.params())
    opt.zero_grad()
    assert all(np.all(p.grad == 0) for p in pair.params())


# --------------------------------------------------------------- clipping

def _grads(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    params = [npylstm.Parameter(np.zeros(s)) for s in shapes]
    t_params = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for p, tp in zip(params, t_params):
        p.grad[...] = rng.standard_normal(p.shape)
        tp.grad = torch.from_numpy(p.grad.copy())
    return params, t_params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    params, t_params = _grads()
    before = [p.grad.copy() for p in params]
    total = npylstm.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type=norm_type,
                                             foreach=False)
    assert isinstance(total, float)
    assert abs(total - float(t_total)) <= 1e-12 * float(t_total)
    for k, (p, tp) in enumerate(zip(params, t_params)):
        assert_close(f"clipped grad {k}", p.grad, tp.grad, 1e-12)
    if max_norm > total:                                  # no clipping (up to the 1e-6 guard)
        for p, b in zip(params, before):
            np.testing.assert_allclose(p.grad, b, rtol=1e-15)
    else:
        assert np.linalg.norm(np.concatenate([p.grad.ravel() for p in params]),
                              ord=norm_type) <= max_norm * (1 + 1e-9)


def test_clip_grad_norm_single_parameter():
    params, t_params = _grads(1)
    total = npylstm.clip_grad_norm_(params[0], 0.1)
    t_total = torch.nn.utils.clip_grad_norm_(t_params[0], 0.1)
    assert abs(total - float(t_total)) <= 1e-12 * float(t_total)
    assert_close("clipped grad", params[0].grad, t_params[0].grad, 1e-12)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")   # inf * 0, as in torch
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_clip_grad_norm_nonfinite(bad, norm_type):
    params, _ = _grads()
    params[1].grad[2] = bad
    with pytest.raises(RuntimeError):
        npylstm.clip_grad_norm_(params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    params, _ = _grads()
    params[1].grad[2] = bad
    total = npylstm.clip_grad_norm_(params, 1.0, norm_type=norm_type)   # no error by default
    assert not np.isfinite(total)
