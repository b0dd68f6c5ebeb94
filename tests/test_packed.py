"""Variable-length batches: LSTM.forward(input, hx, lengths) and its backward.

The reference is torch's packed path: pack_padded_sequence(enforce_sorted=False)
-> torch.nn.LSTM -> pad_packed_sequence(total_length=T), in float64. Every
option is covered, with distinct non-zero biases, non-zero h_0/c_0, random
upstream gradients on output, h_n and c_n, and unsorted lengths that include
1 and T (and a tie, so the stable sort matters).
"""
import copy
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import npylstm
from npylstm.gradcheck import check_lstm

from helpers import assert_close, randomize, torch_twin

pytestmark = pytest.mark.reference

T, N, I, H, P = 6, 5, 3, 4, 2
LENGTHS = np.array([4, 6, 1, 6, 2])                 # unsorted, includes 1 and T, T twice

OPTIONS = [dict(num_layers=L, bidirectional=bd, proj_size=p, batch_first=bf, bias=b)
           for L, bd, p, bf, b in itertools.product((1, 2), (False, True), (0, P),
                                                     (False, True), (True, False))]


def option_id(o):
    return (f"L{o['num_layers']}-{'bi' if o['bidirectional'] else 'uni'}-P{o['proj_size']}"
            f"-{'bf' if o['batch_first'] else 'tm'}-{'bias' if o['bias'] else 'nobias'}")


def make_case(seed, T=T, N=N, I=I, H=H, dropout=0.0, **options):
    """A float64 npylstm.LSTM with random parameters, an input, (h_0, c_0) and
    random upstream gradients (G for output, G_h for h_n, G_c for c_n)."""
    rng = np.random.default_rng(seed)
    lstm = npylstm.LSTM(I, H, dropout=dropout, dtype=np.float64, rng=seed, **options)
    randomize(lstm, rng)
    D = 2 if options.get("bidirectional") else 1
    L, Hout = options.get("num_layers", 1), options.get("proj_size") or H
    batch_first = options.get("batch_first", False)
    x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    h0 = rng.standard_normal((D * L, N, Hout))
    c0 = rng.standard_normal((D * L, N, H))
    out_shape = (N, T, D * Hout) if batch_first else (T, N, D * Hout)
    G, G_h, G_c = (rng.standard_normal(s) for s in (out_shape, h0.shape, c0.shape))
    return lstm, x, (h0, c0), (G, G_h, G_c)


def valid_mask(lengths, T, batch_first):
    """(T, N, 1) (or (N, T, 1)) booleans: True where step t < length of sequence b."""
    valid = np.arange(T)[:, None] < np.asarray(lengths)[None, :]   # (T, N)
    return (valid.T if batch_first else valid)[..., None]


def run_npylstm(lstm, x, hx, lengths, grads):
    """Forward and backward; returns a dict name -> array of every result."""
    lstm.zero_grad()
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    G, G_h, G_c = grads
    grad_x, (grad_h0, grad_c0) = lstm.backward(G, (G_h, G_c))
    result = dict(output=out, h_n=h_n, c_n=c_n, grad_input=grad_x, grad_h0=grad_h0,
                  grad_c0=grad_c0)
    result.update((f"grad_{name}", p.grad.copy()) for name, p in lstm.named_parameters())
    return result


def run_torch_packed(ref, x, hx, lengths, grads, batch_first):
    """The same through pack_padded_sequence -> ref -> pad_packed_sequence.

    The upstream gradient of output is masked to the valid steps, so the torch
    loss only sees what a packed sequence holds."""
    xt = torch.tensor(x, requires_grad=True)
    h0, c0 = (torch.tensor(a, requires_grad=True) for a in hx)
    packed = pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    out, (h_n, c_n) = ref(packed, (h0, c0))
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    G, G_h, G_c = grads
    G = G * valid_mask(lengths, out.shape[1 if batch_first else 0], batch_first)
    loss = (out * torch.tensor(G)).sum() + (h_n * torch.tensor(G_h)).sum() + (c_n * torch.tensor(G_c)).sum()
    ref.zero_grad()
    loss.backward()
    result = dict(output=out, h_n=h_n, c_n=c_n, grad_input=xt.grad, grad_h0=h0.grad, grad_c0=c0.grad)
    result.update((f"grad_{name}", p.grad) for name, p in ref.named_parameters())
    return result


def torch_lstm(options, I=I, H=H):
    return torch.nn.LSTM(I, H, **options)


# --- parity with torch's packed sequences -----------------------------------------------------

@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_matches_torch_packed_sequence(options):
    lstm, x, hx, grads = make_case(0, **options)
    mine = run_npylstm(lstm, x, hx, LENGTHS, grads)
    ref = torch_twin(lstm, torch_lstm(options))
    theirs = run_torch_packed(ref, x, hx, LENGTHS, grads, options["batch_first"])
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert_close(name, mine[name], theirs[name], tol=1e-9)


@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_padded_positions(options):
    """output and grad_input are exactly zero past each length, and backward
    ignores grad_output there: masking it changes no gradient by a single bit."""
    lstm, x, hx, (G, G_h, G_c) = make_case(1, **options)
    valid = valid_mask(LENGTHS, T, options["batch_first"])
    full = run_npylstm(lstm, x, hx, LENGTHS, (G, G_h, G_c))
    masked = run_npylstm(lstm, x, hx, LENGTHS, (G * valid, G_h, G_c))
    pad = np.broadcast_to(~valid, full["output"].shape)
    assert np.all(full["output"][pad] == 0), "output is not zero at padded steps"
    pad = np.broadcast_to(~valid, full["grad_input"].shape)
    assert np.all(full["grad_input"][pad] == 0), "grad_input is not zero at padded steps"
    for name in full:
        assert np.array_equal(full[name], masked[name]), f"{name} depends on grad_output at padded steps"


def test_h_n_is_the_state_at_each_sequences_own_last_step():
    """Each sequence run alone on its own steps gives the same output, h_n and
    c_n (the reverse direction starts from that sequence's last valid step)."""
    options = dict(num_layers=2, bidirectional=True, proj_size=P)
    lstm, x, (h0, c0), _ = make_case(2, **options)
    out, (h_n, c_n) = lstm(x, (h0, c0), lengths=LENGTHS)
    for b, length in enumerate(LENGTHS):
        out_b, (h_b, c_b) = lstm(x[:length, b], (h0[:, b], c0[:, b]))   # unbatched, truncated
        assert_close(f"output[:, {b}]", out[:length, b], out_b, tol=1e-12)
        assert_close(f"h_n[:, {b}]", h_n[:, b], h_b, tol=1e-12)
        assert_close(f"c_n[:, {b}]", c_n[:, b], c_b, tol=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data(), T=st.integers(1, 5), N=st.integers(1, 4),
       options=st.sampled_from(OPTIONS))
def test_matches_torch_for_any_lengths(data, T, N, options):
    lengths = np.array(data.draw(st.lists(st.integers(1, T), min_size=N, max_size=N)))
    lstm, x, hx, grads = make_case(int(lengths.sum()), T=T, N=N, **options)
    mine = run_npylstm(lstm, x, hx, lengths, grads)
    ref = torch_twin(lstm, torch_lstm(options))
    theirs = run_torch_packed(ref, x, hx, lengths, grads, options["batch_first"])
    for name in mine:
        assert_close(f"{name} (T={T}, lengths={lengths.tolist()})", mine[name], theirs[name], tol=1e-9)


# --- dropout --------------------------------------------------------------------------------

DROPOUT_OPTIONS = [dict(num_layers=L, bidirectional=bd, proj_size=p, batch_first=bf, bias=True)
                   for L, bd, p, bf in itertools.product((2, 3), (False, True), (0, P), (False, True))]


def torch_layer_by_layer(lstm, x, hx, lengths, grads, masks, batch_first):
    """torch's packed path one layer at a time, with npylstm's dropout masks
    (given in the original batch order, time-major) applied between layers."""
    L, D = lstm.num_layers, 2 if lstm.bidirectional else 1
    state = lstm.state_dict()
    xt = torch.tensor(x, requires_grad=True)
    h0, c0 = (torch.tensor(a, requires_grad=True) for a in hx)
    layer_input = xt.transpose(0, 1) if batch_first else xt                       # (T, N, .)
    lengths_t = torch.as_tensor(lengths)
    layers, h_n, c_n = [], [], []
    for k in range(L):
        layer = torch.nn.LSTM(layer_input.shape[2], lstm.hidden_size, bias=lstm.bias,
                              bidirectional=lstm.bidirectional, proj_size=lstm.proj_size).double()
        layer.load_state_dict({name.replace(f"_l{k}", "_l0"): torch.from_numpy(v)
                               for name, v in state.items() if f"_l{k}" in name})
        packed = pack_padded_sequence(layer_input, lengths_t, enforce_sorted=False)
        out, (h, c) = layer(packed, (h0[k * D:(k + 1) * D], c0[k * D:(k + 1) * D]))
        out, _ = pad_packed_sequence(out, total_length=layer_input.shape[0])
        if k < L - 1:
            out = out * torch.from_numpy(masks[k])
        layers.append(layer)
        h_n.append(h)
        c_n.append(c)
        layer_input = out
    out = layer_input.transpose(0, 1) if batch_first else layer_input
    h_n, c_n = torch.cat(h_n), torch.cat(c_n)
    G, G_h, G_c = grads
    G = G * valid_mask(lengths, out.shape[1 if batch_first else 0], batch_first)
    loss = (out * torch.tensor(G)).sum() + (h_n * torch.tensor(G_h)).sum() + (c_n * torch.tensor(G_c)).sum()
    loss.backward()
    result = dict(output=out, h_n=h_n, c_n=c_n, grad_input=xt.grad, grad_h0=h0.grad, grad_c0=c0.grad)
    for k, layer in enumerate(layers):
        result.update((f"grad_{name.replace('_l0', f'_l{k}')}", p.grad) for name, p in layer.named_parameters())
    return result


@pytest.mark.parametrize("options", DROPOUT_OPTIONS, ids=option_id)
def test_dropout_matches_torch_layer_by_layer(options):
    lstm, x, hx, grads = make_case(3, dropout=0.5, **options)
    mine = run_npylstm(lstm, x, hx, LENGTHS, grads)
    # _cache["masks"][k] multiplies layer k's output in npylstm's internal
    # layout: time-major, batch sorted longest first; put it back in batch order.
    inverse = np.argsort(lstm._cache["order"])
    masks = [m[:, inverse] for m in lstm._cache["masks"][:-1]]
    assert all(np.any(m == 0) for m in masks), "dropout dropped nothing; the test would be vacuous"
    theirs = torch_layer_by_layer(lstm, x, hx, LENGTHS, grads, masks, options["batch_first"])
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert_close(name, mine[name], theirs[name], tol=1e-9)
    valid = valid_mask(LENGTHS, T, options["batch_first"])
    assert np.all(mine["output"][np.broadcast_to(~valid, mine["output"].shape)] == 0)
    assert np.all(mine["grad_input"][np.broadcast_to(~valid, mine["grad_input"].shape)] == 0)


def test_dropout_inactive_in_eval_with_lengths():
    lstm, x, hx, _ = make_case(4, dropout=0.5, num_layers=2, bidirectional=True)
    lstm.eval()
    out, (h_n, c_n) = lstm(x, hx, lengths=LENGTHS)
    ref = torch_twin(lstm, torch_lstm(dict(num_layers=2, bidirectional=True, dropout=0.5))).eval()
    theirs = run_torch_packed(ref, x, hx, LENGTHS, (np.zeros_like(out), np.zeros_like(h_n),
                                                    np.zeros_like(c_n)), False)
    for name, mine in dict(output=out, h_n=h_n, c_n=c_n).items():
        assert_close(name, mine, theirs[name], tol=1e-9)


# --- all lengths equal to T -------------------------------------------------------------------

@pytest.mark.parametrize("options", OPTIONS, ids=option_id)
def test_full_lengths_are_bitwise_the_unpacked_result(options):
    """lengths all T: the stable sort is the identity and every step runs on
    every row, so the packed path does exactly the unpacked arithmetic."""
    lstm, x, hx, grads = make_case(5, **options)
    plain = run_npylstm(lstm, x, hx, None, grads)
    packed = run_npylstm(lstm, x, hx, np.full(N, T), grads)
    for name in plain:
        assert np.array_equal(plain[name], packed[name]), f"{name}: lengths=T differs from lengths=None"


def test_full_lengths_with_dropout_are_bitwise_the_unpacked_result():
    options = dict(num_layers=3, bidirectional=True, proj_size=P, dropout=0.5)
    lstm, x, hx, grads = make_case(6, **options)
    state = copy.deepcopy(lstm._rng.bit_generator.state)
    plain = run_npylstm(lstm, x, hx, None, grads)
    lstm._rng.bit_generator.state = state                        # the same dropout masks
    packed = run_npylstm(lstm, x, hx, np.full(N, T), grads)
    for name in plain:
        assert np.array_equal(plain[name], packed[name]), f"{name}: lengths=T differs from lengths=None"


# --- finite differences ---------------------------------------------------------------------

GRADCHECK_LENGTHS = np.array([2, 4, 1])                           # T=4, N=3

GRADCHECK_OPTIONS = [dict(num_layers=L, bidirectional=bd, proj_size=p, batch_first=bf, bias=b,
                          dropout=dr)
                     for L, bd, p, bf, b, dr in itertools.product(
                         (1, 2), (False, True), (0, 2), (False, True), (True, False), (0.0, 0.5))
                     if not (dr and L == 1)
                     # every (L, bidirectional, proj_size, dropout); batch_first and bias in two mixes
                     and bf == b]


@pytest.mark.parametrize("options", GRADCHECK_OPTIONS,
                         ids=lambda o: option_id(o) + (f"-drop{o['dropout']}" if o["dropout"] else ""))
def test_gradcheck_with_lengths(options):
    lstm, x, hx, _ = make_case(7, T=4, N=3, I=2, H=3, **options)
    results = check_lstm(lstm, x, hx, GRADCHECK_LENGTHS, seed=8)
    worst = max(results, key=lambda r: r.max_rel_error)
    assert worst.max_rel_error < 1e-7, f"{worst.name}: finite differences differ, {worst}"
    if options["dropout"]:                                        # the check really had dropout on
        assert any(m is not None and np.any(m == 0) for m in lstm._cache["masks"])
    out, _ = lstm(x, hx, lengths=GRADCHECK_LENGTHS)
    valid = valid_mask(GRADCHECK_LENGTHS, 4, options["batch_first"])
    assert np.all(out[np.broadcast_to(~valid, out.shape)] == 0)


# --- the lengths argument itself --------------------------------------------------------------

@pytest.mark.parametrize("lengths, words", [
    ([4, 6, 1, 6], r"shape \(5,\)"),                  # one too few
    ([4, 6, 1, 6, 2, 3], r"shape \(5,\)"),            # one too many
    ([[4, 6, 1, 6, 2]], r"shape \(5,\)"),             # 2-D
    (np.array(3), r"shape \(5,\)"),                   # a scalar for a batch
    ([4, 6, 0, 6, 2], r"between 1 and T=6"),
    ([4, 7, 1, 6, 2], r"between 1 and T=6"),
    ([4, -1, 1, 6, 2], r"between 1 and T=6"),
    ([4, 6, 2.5, 6, 2], r"integers"),
    ([4, 6, np.nan, 6, 2], r"integers"),
    ([4, 6, np.inf, 6, 2], r"integers"),
    ([True, True, True, True, True], r"integers"),
    (["4", "6", "1", "6", "2"], r"integers"),
])
def test_bad_lengths_raise_value_error(lengths, words):
    lstm, x, hx, _ = make_case(9)
    with pytest.raises(ValueError, match=words):
        lstm(x, hx, lengths=lengths)


@pytest.mark.parametrize("lengths", [
    [4, 6, 1, 6, 2], (4, 6, 1, 6, 2), np.array([4, 6, 1, 6, 2], dtype=np.int32),
    np.array([4, 6, 1, 6, 2], dtype=np.uint8), np.array([4.0, 6.0, 1.0, 6.0, 2.0]),
    torch.tensor([4, 6, 1, 6, 2]),
])
def test_lengths_accept_any_integer_like_array(lengths):
    """Lists, tuples, any integer dtype, whole-number floats and torch tensors
    all give the result of the int64 array."""
    lstm, x, hx, _ = make_case(10)
    expected = lstm(x, hx, lengths=LENGTHS)
    out, (h_n, c_n) = lstm(x, hx, lengths=lengths)
    assert np.array_equal(out, expected[0])
    assert np.array_equal(h_n, expected[1][0]) and np.array_equal(c_n, expected[1][1])


def test_unbatched_input_takes_one_length():
    """Unbatched input is a batch of one: lengths=[L] runs the first L steps,
    the same as the truncated input, with zeros after."""
    options = dict(num_layers=2, bidirectional=True, proj_size=P)
    lstm, x, (h0, c0), _ = make_case(11, **options)
    x, h0, c0 = x[:, 0], h0[:, 0], c0[:, 0]                       # (T, I), (D*L, Hout), (D*L, H)
    out, (h_n, c_n) = lstm(x, (h0, c0), lengths=[3])
    grad_x, _ = lstm.backward(np.ones_like(out), (np.ones_like(h_n), np.ones_like(c_n)))
    short, (h_short, c_short) = lstm(x[:3], (h0, c0))
    grad_short, _ = lstm.backward(np.ones_like(short), (np.ones_like(h_n), np.ones_like(c_n)))
    assert out.shape == (T, 2 * P) and h_n.shape == h0.shape
    assert_close("output", out[:3], short, tol=1e-12)
    assert np.all(out[3:] == 0) and np.all(grad_x[3:] == 0)
    assert_close("h_n", h_n, h_short, tol=1e-12)
    assert_close("c_n", c_n, c_short, tol=1e-12)
    assert_close("grad_input", grad_x[:3], grad_short, tol=1e-12)
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        lstm(x, (h0, c0), lengths=[3, 3])
    with pytest.raises(ValueError, match=r"between 1 and T=6"):
        lstm(x, (h0, c0), lengths=[7])


# --- repeated calls on one module -------------------------------------------------------------

def test_changing_lengths_between_calls():
    """The workspaces reused across calls carry nothing from one batch to the next."""
    options = dict(num_layers=2, bidirectional=True, proj_size=P, bias=True)
    lstm, x, hx, grads = make_case(12, **options)
    ref = torch_twin(lstm, torch_lstm(options))
    for lengths in ([6, 6, 6, 6, 6], [1, 2, 3, 4, 5], [4, 6, 1, 6, 2], [1, 1, 1, 1, 1]):
        mine = run_npylstm(lstm, x, hx, lengths, grads)
        theirs = run_torch_packed(ref, x, hx, lengths, grads, False)
        for name in mine:
            assert_close(f"{name} (lengths {lengths})", mine[name], theirs[name], tol=1e-9)


def test_a_bad_batch_does_not_poison_the_next():
    """A NaN batch may give NaN, but the next clean batch must not. With
    proj_size, grad weight_hr sums zero gradients times whatever the reused
    (T, N, H) buffer of o * tanh(c) holds at padded steps: a NaN left there by
    an earlier call (or by fresh np.empty memory) makes it 0 * NaN = NaN."""
    options = dict(proj_size=P)
    lstm, x, hx, grads = make_case(13, **options)
    clean = run_npylstm(lstm, x, hx, LENGTHS, grads)
    lstm(np.full_like(x, np.nan), hx)
    again = run_npylstm(lstm, x, hx, LENGTHS, grads)
    for name in clean:
        assert np.array_equal(clean[name], again[name]), f"{name} changed after a NaN batch"


@pytest.mark.parametrize("options", [OPTIONS[0], OPTIONS[-1],
                                     dict(num_layers=2, bidirectional=True, proj_size=P,
                                          batch_first=False, bias=True)], ids=option_id)
def test_padding_is_never_read(options):
    """torch never reads padded input; neither may npylstm. NaN or inf in the
    padding must leave every result and gradient exactly as with zero padding
    (a 0 * NaN anywhere, e.g. in a weight gradient summed over all steps,
    would show up as NaN)."""
    lstm, x, hx, grads = make_case(17, **options)
    pad = ~valid_mask(LENGTHS, T, options["batch_first"])[..., 0]
    zero_padded, nan_padded = x.copy(), x.copy()
    zero_padded[pad] = 0
    nan_padded[pad] = np.nan
    nan_padded[pad.nonzero()[0][:1], pad.nonzero()[1][:1]] = np.inf
    expected = run_npylstm(lstm, zero_padded, hx, LENGTHS, grads)
    got = run_npylstm(lstm, nan_padded, hx, LENGTHS, grads)
    for name in expected:
        assert np.array_equal(expected[name], got[name]), f"{name}: the padding was read"
