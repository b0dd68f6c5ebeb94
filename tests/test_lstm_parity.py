"""npylstm.LSTM against torch.nn.LSTM in float64: values and every gradient.

Weights are copied into torch, biases are random so that b_ih != b_hh and
both are non-zero, initial states are non-zero, and the upstream gradients
of output, h_n and c_n are random. Dropout is reproduced layer by layer with
npylstm's own masks.
"""
import itertools

import numpy as np
import pytest
import torch

import npylstm
from helpers import (_t, assert_close, assert_lstm_matches_torch, lstm_upstream, randomize,
                     torch_lstm_like)

pytestmark = pytest.mark.reference

OPTIONS = list(itertools.product(
    (1, 2),             # num_layers
    (False, True),      # bidirectional
    (0, 2),             # proj_size
    (False, True),      # batch_first
    (False, True),      # unbatched
    (True, False),      # bias
))


def make_case(num_layers=1, bidirectional=False, proj_size=0, batch_first=False,
              unbatched=False, bias=True, T=4, N=3, I=3, H=4, dropout=0.0, seed=0,
              dtype=np.float64):
    """An LSTM with random distinct parameters, an input and a non-zero (h_0, c_0)."""
    rng = np.random.default_rng(seed)
    lstm = npylstm.LSTM(I, H, num_layers, bias=bias, batch_first=batch_first, dropout=dropout,
                        bidirectional=bidirectional, proj_size=proj_size, dtype=dtype, rng=seed)
    randomize(lstm, rng)
    D, Hout = 2 if bidirectional else 1, proj_size or H
    if unbatched:
        x = rng.standard_normal((T, I))
        hx = (rng.standard_normal((D * num_layers, Hout)), rng.standard_normal((D * num_layers, H)))
    else:
        x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
        hx = (rng.standard_normal((D * num_layers, N, Hout)),
              rng.standard_normal((D * num_layers, N, H)))
    return lstm, x, hx, rng


def _option_id(opts):
    L, bd, P, bf, ub, b = opts
    return f"L{L}-{'bi' if bd else 'uni'}-P{P}-{'bf' if bf else 'tm'}-{'unb' if ub else 'bat'}-{'bias' if b else 'nobias'}"


@pytest.mark.parametrize("opts", OPTIONS, ids=[_option_id(o) for o in OPTIONS])
def test_lstm_matches_torch_every_option(opts):
    L, bd, P, bf, ub, b = opts
    k = OPTIONS.index(opts)
    # vary the small shapes with the case: T in 3..5, N in 2..3, H in 4..5
    T, N, H = 3 + k % 3, 2 + k % 2, 4 + (k // 2) % 2
    lstm, x, hx, rng = make_case(L, bd, P, bf, ub, b, T=T, N=N, H=H, seed=k)
    assert_lstm_matches_torch(lstm, x, hx, rng)


@pytest.mark.parametrize("T,N", [(1, 3), (4, 1), (1, 1)])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_edge_sizes(T, N, bidirectional):
    lstm, x, hx, rng = make_case(2, bidirectional, 2, T=T, N=N, H=5, seed=10 + T + N)
    assert_lstm_matches_torch(lstm, x, hx, rng)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_unbatched_single_step(bidirectional):
    lstm, x, hx, rng = make_case(2, bidirectional, 0, unbatched=True, T=1, seed=3)
    assert_lstm_matches_torch(lstm, x, hx, rng)


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_hx_none_is_zero_state(unbatched, bidirectional):
    lstm, x, _, rng = make_case(2, bidirectional, 2, unbatched=unbatched, H=5, seed=4)
    out, (h_n, c_n) = assert_lstm_matches_torch(lstm, x, None, rng)
    # and None is the same as explicit zeros, gradients of h_0 and c_0 included
    twin = torch_lstm_like(lstm)
    grad_out, grad_h, grad_c = lstm_upstream(np.random.default_rng(0), out, h_n, c_n)
    lstm.zero_grad()
    out_none, _ = lstm(x)
    grad_x_none, (grad_h0, grad_c0) = lstm.backward(grad_out, (grad_h, grad_c))
    zeros = (_t(np.zeros(np.shape(h_n))), _t(np.zeros(np.shape(c_n))))
    t_out, (t_h, t_c) = twin(_t(x), zeros)
    ((t_out * torch.from_numpy(grad_out)).sum() + (t_h * torch.from_numpy(grad_h)).sum()
     + (t_c * torch.from_numpy(grad_c)).sum()).backward()
    assert_close("output", out_none, t_out)
    assert_close("grad h_0 (hx=None)", grad_h0, zeros[0].grad)
    assert_close("grad c_0 (hx=None)", grad_c0, zeros[1].grad)


@pytest.mark.parametrize("opts", [(1, False, 0), (2, True, 2), (2, False, 2)])
@pytest.mark.parametrize("unbatched", [False, True])
def test_backward_without_grad_hx(opts, unbatched):
    L, bd, P = opts
    lstm, x, hx, rng = make_case(L, bd, P, unbatched=unbatched, H=5, seed=5)
    assert_lstm_matches_torch(lstm, x, hx, rng, use_grad_hx=False)


@pytest.mark.parametrize("opts", [(1, False, 0, False, False), (2, True, 2, True, False),
                                  (2, False, 0, False, True)])
@pytest.mark.parametrize("packed", [False, True])
def test_grad_output_none_is_zero(opts, packed):
    """backward(None, grad_hx) is backward(zeros, grad_hx), bit for bit (the loss reads h_n only)."""
    L, bd, P, bf, ub = opts
    lstm, x, hx, rng = make_case(L, bd, P, batch_first=bf, unbatched=ub, H=5, seed=8)
    lengths = None if ub or not packed else np.array([2, 4, 1])
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    grad_hx = (rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape))
    results = []
    for grad_output in (np.zeros_like(out), None):
        lstm.zero_grad()
        grad_x, (grad_h0, grad_c0) = lstm.backward(grad_output, grad_hx)
        results.append([grad_x, grad_h0, grad_c0] + [p.grad.copy() for p in lstm.parameters()])
    for name, zeros, none in zip(["input", "h0", "c0"] + [n for n, _ in lstm.named_parameters()],
                                 *results):
        assert np.array_equal(zeros, none), f"grad {name}: None differs from zeros"


@pytest.mark.parametrize("opts", [(1, False, 0, False), (2, True, 2, True), (2, False, 0, True)])
def test_float32_matches_torch(opts):
    """float32 npylstm against the float64 reference of the same float32 weights."""
    L, bd, P, bf = opts
    lstm, x, hx, rng = make_case(L, bd, P, bf, H=5, seed=6, dtype=np.float32)
    x = x.astype(np.float32)
    hx = tuple(a.astype(np.float32) for a in hx)
    out, _ = assert_lstm_matches_torch(lstm, x, hx, rng, tol=1e-5)
    assert out.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in lstm.parameters())


def test_float32_outputs_and_grads_are_float32():
    lstm, x, hx, rng = make_case(2, True, 2, dtype=np.float32)
    out, (h_n, c_n) = lstm(x, hx)                 # float64 arrays in, module dtype out
    grad_x, (grad_h0, grad_c0) = lstm.backward(*lstm_upstream(rng, out, h_n, c_n)[:1])
    for name, a in dict(out=out, h_n=h_n, c_n=c_n, grad_x=grad_x, grad_h0=grad_h0,
                        grad_c0=grad_c0).items():
        assert a.dtype == np.float32, name


# ---------------------------------------------------------------- dropout

def test_eval_mode_has_no_dropout():
    lstm, x, hx, rng = make_case(3, True, 0, dropout=0.5, seed=7)
    lstm.eval()
    first, _ = lstm(x, hx)
    second, _ = lstm(x, hx)
    np.testing.assert_array_equal(first, second)
    assert all(m is None for m in lstm._cache["masks"])
    # eval mode equals torch in eval mode (no dropout)
    twin = torch_lstm_like(lstm).eval()
    assert_lstm_matches_torch(lstm, x, hx, rng, twin=twin)


def test_train_mode_dropout_differs_and_is_reproducible():
    lstm_a, x, hx, _ = make_case(2, False, 0, dropout=0.5, seed=8)
    lstm_b, _, _, _ = make_case(2, False, 0, dropout=0.5, seed=8)
    out_a1, _ = lstm_a(x, hx)
    out_b1, _ = lstm_b(x, hx)
    np.testing.assert_array_equal(out_a1, out_b1)          # same rng seed, same masks
    out_a2, _ = lstm_a(x, hx)
    assert not np.allclose(out_a1, out_a2)                 # fresh masks each forward
    lstm_a.eval()
    out_eval, _ = lstm_a(x, hx)
    assert not np.allclose(out_a1, out_eval)


def test_dropout_mask_values():
    p = 0.25
    lstm, x, hx, _ = make_case(3, True, 2, dropout=p, T=5, N=3, seed=9)
    lstm(x, hx)
    masks = lstm._cache["masks"]
    assert len(masks) == 3 and masks[-1] is None           # the last layer never gets dropout
    for mask in masks[:-1]:
        assert mask.shape == (5, 3, 2 * 2)                 # (T, N, D*Hout)
        assert set(np.unique(mask)) <= {0.0, 1 / (1 - p)}


def _dropout_reference(lstm, x, hx, masks, grads):
    """torch single-layer LSTMs, layer by layer, with npylstm's masks between them."""
    D, L, H = (2 if lstm.bidirectional else 1), lstm.num_layers, lstm.hidden_size
    tx = _t(x)
    h0, c0 = _t(hx[0]), _t(hx[1])
    layer_input, h_n, c_n, layers = tx, [], [], []
    for k in range(L):
        in_size = lstm.input_size if k == 0 else D * (lstm.proj_size or H)
        layer = torch.nn.LSTM(in_size, H, 1, bias=lstm.bias, batch_first=lstm.batch_first,
                              bidirectional=lstm.bidirectional, proj_size=lstm.proj_size).double()
        state = {name.replace("_l0", f"_l{k}"): name for name, _ in layer.named_parameters()}
        with torch.no_grad():
            for mine, theirs in state.items():
                dict(layer.named_parameters())[theirs].copy_(
                    torch.from_numpy(getattr(lstm, mine).data))
        layers.append((layer, state))
        out, (h, c) = layer(layer_input, (h0[k * D:(k + 1) * D], c0[k * D:(k + 1) * D]))
        h_n.append(h)
        c_n.append(c)
        if k < L - 1:
            mask = torch.from_numpy(masks[k])
            if lstm.batch_first:
                mask = mask.transpose(0, 1)
            out = out * mask
        layer_input = out
    h_n, c_n = torch.cat(h_n), torch.cat(c_n)
    g_out, g_h, g_c = (torch.from_numpy(g) for g in grads)
    ((layer_input * g_out).sum() + (h_n * g_h).sum() + (c_n * g_c).sum()).backward()
    param_grads = {}
    for layer, state in layers:
        named = dict(layer.named_parameters())
        param_grads.update((mine, named[theirs].grad) for mine, theirs in state.items())
    return layer_input, h_n, c_n, tx.grad, h0.grad, c0.grad, param_grads


@pytest.mark.parametrize("opts", [(2, False, 0, False, 0.5), (3, True, 2, True, 0.3),
                                  (2, True, 0, False, 0.7), (2, False, 2, True, 1.0)])
def test_train_dropout_matches_torch_with_same_masks(opts):
    L, bd, P, bf, p = opts
    lstm, x, hx, rng = make_case(L, bd, P, bf, dropout=p, T=4, N=3, H=5, seed=11)
    out, (h_n, c_n) = lstm(x, hx)
    masks = lstm._cache["masks"]
    assert masks[-1] is None and all(m is not None for m in masks[:-1])
    grads = lstm_upstream(rng, out, h_n, c_n)
    grad_x, (grad_h0, grad_c0) = lstm.backward(grads[0], grads[1:])
    ref = _dropout_reference(lstm, x, hx, masks, grads)
    t_out, t_h, t_c, t_gx, t_gh0, t_gc0, t_param_grads = ref
    for name, mine, theirs in [("output", out, t_out), ("h_n", h_n, t_h), ("c_n", c_n, t_c),
                               ("grad input", grad_x, t_gx), ("grad h_0", grad_h0, t_gh0),
                               ("grad c_0", grad_c0, t_gc0)]:
        assert_close(name, mine, theirs)
    for name, param in lstm.named_parameters():
        assert_close(f"grad {name}", param.grad, t_param_grads[name])


def test_dropout_one_zeroes_the_next_layer_input():
    lstm, x, hx, rng = make_case(2, True, 0, dropout=1.0, seed=12)
    out, (h_n, c_n) = lstm(x, hx)
    assert np.all(lstm._cache["masks"][0] == 0)
    # layer 1 sees only zeros: the same as running it alone on a zero input
    single = npylstm.LSTM(2 * 4, 4, 1, bidirectional=True, dtype=np.float64)
    single.load_state_dict({k.replace("_l1", "_l0"): v for k, v in lstm.state_dict().items()
                            if "_l1" in k})
    ref_out, (ref_h, _) = single(np.zeros(x.shape[:2] + (8,)), (hx[0][2:], hx[1][2:]))
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-15)
    np.testing.assert_allclose(h_n[2:], ref_h, rtol=0, atol=1e-15)
    lstm.backward(*lstm_upstream(rng, out, h_n, c_n)[:1])
    # nothing flows back into layer 0 through the output of layer 1
    assert np.all(lstm.weight_ih_l0.grad == 0) and np.all(lstm.weight_hh_l0.grad == 0)


@pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning")
def test_single_layer_dropout_is_a_no_op():
    """torch applies dropout between layers only: one layer never drops."""
    lstm, x, hx, rng = make_case(1, True, 2, dropout=0.9, seed=13)
    assert_lstm_matches_torch(lstm, x, hx, rng, twin=torch_lstm_like(lstm).eval())
    assert lstm._cache["masks"] == [None]
