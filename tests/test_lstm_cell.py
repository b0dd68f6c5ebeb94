"""npylstm.LSTMCell against torch.nn.LSTMCell in float64: values and every gradient."""
import numpy as np
import pytest
import torch

import npylstm
from helpers import _t, assert_close, randomize, torch_twin

pytestmark = pytest.mark.reference


def make_cell(bias=True, I=3, H=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    cell = npylstm.LSTMCell(I, H, bias=bias, dtype=dtype, rng=seed)
    randomize(cell, rng)
    return cell, torch_twin(cell, torch.nn.LSTMCell(I, H, bias=bias)), rng


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", ["batched", "single", "unbatched"])
@pytest.mark.parametrize("with_hx", [True, False])
@pytest.mark.parametrize("with_grad_c1", [True, False])
def test_cell_matches_torch(bias, shape, with_hx, with_grad_c1):
    cell, twin, rng = make_cell(bias, seed=1)
    lead = {"batched": (3,), "single": (1,), "unbatched": ()}[shape]
    x = rng.standard_normal(lead + (3,))
    hx = (rng.standard_normal(lead + (4,)), rng.standard_normal(lead + (4,))) if with_hx else None
    h1, c1 = cell(x, hx)
    grad_h1 = rng.standard_normal(h1.shape)
    grad_c1 = rng.standard_normal(c1.shape) if with_grad_c1 else None
    grad_x, (grad_h0, grad_c0) = cell.backward(grad_h1, grad_c1)

    tx = _t(x)
    thx = (_t(hx[0]), _t(hx[1])) if with_hx else (_t(np.zeros(lead + (4,))), _t(np.zeros(lead + (4,))))
    t_h1, t_c1 = twin(tx, thx)
    loss = (t_h1 * torch.from_numpy(grad_h1)).sum()
    if with_grad_c1:
        loss = loss + (t_c1 * torch.from_numpy(grad_c1)).sum()
    loss.backward()

    assert h1.shape == c1.shape == lead + (4,)
    assert grad_x.shape == x.shape and grad_h0.shape == grad_c0.shape == lead + (4,)
    assert_close("h_1", h1, t_h1)
    assert_close("c_1", c1, t_c1)
    assert_close("grad input", grad_x, tx.grad)
    assert_close("grad h_0", grad_h0, thx[0].grad)
    assert_close("grad c_0", grad_c0, thx[1].grad)
    tparams = dict(twin.named_parameters())
    assert [n for n, _ in cell.named_parameters()] == list(tparams)
    for name, p in cell.named_parameters():
        assert_close(f"grad {name}", p.grad, tparams[name].grad)


def test_cell_hx_none_equals_zeros():
    cell, _, rng = make_cell(seed=2)
    x = rng.standard_normal((2, 3))
    h_a, c_a = cell(x)
    h_b, c_b = cell(x, (np.zeros((2, 4)), np.zeros((2, 4))))
    np.testing.assert_array_equal(h_a, h_b)
    np.testing.assert_array_equal(c_a, c_b)


def test_cell_float32_matches_torch():
    cell, twin, rng = make_cell(seed=3, dtype=np.float32)
    x = rng.standard_normal((3, 3)).astype(np.float32)
    hx = tuple(rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2))
    h1, c1 = cell(x, hx)
    assert h1.dtype == c1.dtype == np.float32
    t_h1, t_c1 = twin(_t(x), (_t(hx[0]), _t(hx[1])))
    assert_close("h_1", h1, t_h1, 1e-5)
    assert_close("c_1", c1, t_c1, 1e-5)


def test_cell_unrolled_equals_lstm():
    """Stepping the cell over a sequence gives npylstm.LSTM's output (same weights)."""
    cell, _, rng = make_cell(seed=4)
    lstm = npylstm.LSTM(3, 4, dtype=np.float64)
    lstm.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = rng.standard_normal((5, 2, 3))
    h, c = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    out, (h_n, c_n) = lstm(x, (h[None], c[None]))
    for t in range(5):
        h, c = cell(x[t], (h, c))
        assert_close(f"output[{t}]", out[t], h, 1e-12)
    assert_close("c_n", c_n[0], c, 1e-12)
