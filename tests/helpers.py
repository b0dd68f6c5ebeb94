"""Shared test helpers: comparisons that name the tensor, and torch twins of npylstm modules.

Importing this module imports torch; only tests import it.
"""
import numpy as np
import torch


def rel_error(mine, ref):
    """Normwise relative error max|mine - ref| / max|ref| (absolute when ref is all zero)."""
    mine = np.asarray(mine, dtype=np.float64)
    ref = np.asarray(ref.detach().numpy() if isinstance(ref, torch.Tensor) else ref, dtype=np.float64)
    assert mine.shape == ref.shape, f"shape: mine {mine.shape} vs torch {ref.shape}"
    scale = np.max(np.abs(ref), initial=0.0)
    err = np.max(np.abs(mine - ref), initial=0.0)
    return err / scale if scale > 0 else err


def assert_close(name, mine, ref, tol=1e-9):
    """Fail with a message that names the tensor when the relative error exceeds tol."""
    err = rel_error(mine, ref)
    assert err <= tol, f"{name}: mine vs torch differ, relative error {err:.3e} > {tol:.1e}"


def randomize(module, rng, scale=0.5):
    """Overwrite every parameter with distinct random values (biases non-zero and b_ih != b_hh)."""
    for p in module.parameters():
        p.data[...] = rng.uniform(-scale, scale, p.shape)


def torch_twin(module, torch_module):
    """Copy module's parameters into torch_module (same names) and return it in float64."""
    torch_module = torch_module.double()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module


def torch_lstm_like(lstm):
    """A float64 torch.nn.LSTM with the options and the parameters of an npylstm.LSTM."""
    twin = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, lstm.num_layers, bias=lstm.bias,
                         batch_first=lstm.batch_first, dropout=lstm.dropout,
                         bidirectional=lstm.bidirectional, proj_size=lstm.proj_size)
    return torch_twin(lstm, twin)


def _t(a):
    """A float64 leaf tensor that records its gradient (None stays None)."""
    return None if a is None else torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def lstm_upstream(rng, output, h_n, c_n):
    """Random upstream gradients shaped like (output, h_n, c_n)."""
    return (rng.standard_normal(np.shape(output)), rng.standard_normal(np.shape(h_n)),
            rng.standard_normal(np.shape(c_n)))


def assert_lstm_matches_torch(lstm, x, hx, rng, tol=1e-9, use_grad_hx=True, twin=None):
    """Run npylstm.LSTM and its float64 torch twin on the same x and hx, with one
    random upstream gradient for output, h_n and c_n (or output only when
    ``use_grad_hx`` is False), and compare values and every gradient."""
    twin = torch_lstm_like(lstm) if twin is None else twin
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, hx)
    g_out, g_h, g_c = lstm_upstream(rng, out, h_n, c_n)
    grad_hx = (g_h, g_c) if use_grad_hx else None
    grad_x, (grad_h0, grad_c0) = lstm.backward(g_out, grad_hx)

    tx = _t(x)
    thx = None if hx is None else (_t(hx[0]), _t(hx[1]))
    t_out, (t_h, t_c) = twin(tx, thx)
    loss = (t_out * torch.from_numpy(g_out)).sum()
    if use_grad_hx:
        loss = loss + (t_h * torch.from_numpy(g_h)).sum() + (t_c * torch.from_numpy(g_c)).sum()
    loss.backward()

    assert_close("output", out, t_out, tol)
    assert_close("h_n", h_n, t_h, tol)
    assert_close("c_n", c_n, t_c, tol)
    assert_close("grad input", grad_x, tx.grad, tol)
    if hx is None:
        assert grad_h0.shape == np.shape(h_n) and grad_c0.shape == np.shape(c_n)
    else:
        assert_close("grad h_0", grad_h0, thx[0].grad, tol)
        assert_close("grad c_0", grad_c0, thx[1].grad, tol)
    tparams = dict(twin.named_parameters())
    names = [name for name, _ in lstm.named_parameters()]
    assert names == list(tparams), f"parameter names/order: mine {names} vs torch {list(tparams)}"
    for name, p in lstm.named_parameters():
        assert_close(f"grad {name}", p.grad, tparams[name].grad, tol)
    return out, (h_n, c_n)
