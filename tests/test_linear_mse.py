"""npylstm.Linear and npylstm.MSELoss against torch in float64."""
import numpy as np
import pytest
import torch

import npylstm
from helpers import _t, assert_close, randomize, torch_twin

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("lead", [(), (5,), (4, 3), (2, 3, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(lead, bias):
    rng = np.random.default_rng(len(lead))
    lin = npylstm.Linear(3, 4, bias=bias, dtype=np.float64, rng=0)
    randomize(lin, rng)
    twin = torch_twin(lin, torch.nn.Linear(3, 4, bias=bias))
    x = rng.standard_normal(lead + (3,))
    y = lin(x)
    grad_y = rng.standard_normal(y.shape)
    grad_x = lin.backward(grad_y)
    tx = _t(x)
    ty = twin(tx)
    (ty * torch.from_numpy(grad_y)).sum().backward()
    assert y.shape == lead + (4,) and grad_x.shape == x.shape
    assert_close("y", y, ty)
    assert_close("grad x", grad_x, tx.grad)
    tparams = dict(twin.named_parameters())
    assert [n for n, _ in lin.named_parameters()] == list(tparams)
    for name, p in lin.named_parameters():
        assert_close(f"grad {name}", p.grad, tparams[name].grad)


def test_linear_float32():
    lin = npylstm.Linear(3, 2, rng=0)
    y = lin(np.ones((4, 3)))
    assert y.dtype == np.float32 and lin.backward(np.ones((4, 2))).dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(7,), (4, 3), (40, 1), (2, 3, 2)])
@pytest.mark.parametrize("upstream", ["default", "random"])
def test_mse_matches_torch(reduction, shape, upstream):
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal(shape), rng.standard_normal(shape)
    crit = npylstm.MSELoss(reduction)
    loss = crit(x, target)
    tx = _t(x)
    t_loss = torch.nn.MSELoss(reduction=reduction)(tx, torch.from_numpy(target))
    assert_close("loss", loss, t_loss)
    if upstream == "default" and reduction != "none":
        grad = None
        t_loss.backward()
    else:
        grad = rng.standard_normal(np.shape(loss))
        t_loss.backward(torch.from_numpy(np.asarray(grad)))
    grad_x = crit.backward(grad) if grad is not None else crit.backward()
    assert grad_x.shape == x.shape
    assert_close("grad input", grad_x, tx.grad)


def test_mse_dtypes():
    crit = npylstm.MSELoss()
    assert crit(np.ones(3, np.float32), np.zeros(3, np.float32)).dtype == np.float32
    assert crit(np.ones(3), np.zeros(3)).dtype == np.float64
    assert crit(np.ones(3, np.float32), np.zeros(3, np.float32)).shape == ()


@pytest.mark.parametrize("input_shape,target_shape", [
    ((40, 10, 1), (1, 10, 1)),       # the seed notebook's validation loss
    ((450, 1), (1, 450, 1)),
    ((3,), (3, 1)),
    ((4, 2), (2, 4)),
    ((5,), ()),
])
def test_mse_refuses_mismatched_shapes(input_shape, target_shape):
    crit = npylstm.MSELoss()
    with pytest.raises(ValueError, match="same shape") as info:
        crit(np.zeros(input_shape), np.zeros(target_shape))
    assert str(input_shape) in str(info.value) and str(target_shape) in str(info.value)
