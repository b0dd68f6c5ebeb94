"""Property tests (hypothesis) over sizes and options: parity with torch in float64,
and torch-free identities of the LSTM. Deterministic and bounded."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npylstm
from helpers import assert_close, assert_lstm_matches_torch, randomize

pytestmark = pytest.mark.reference

SETTINGS = settings(max_examples=25, derandomize=True, deadline=None)


@st.composite
def lstm_cases(draw):
    H = draw(st.integers(1, 5))
    opts = dict(
        num_layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        proj_size=draw(st.integers(0, H - 1)),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
    )
    sizes = dict(T=draw(st.integers(1, 5)), N=draw(st.integers(1, 3)), I=draw(st.integers(1, 4)), H=H)
    unbatched = draw(st.booleans())
    with_hx = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return opts, sizes, unbatched, with_hx, seed


def build(opts, sizes, unbatched, with_hx, seed):
    T, N, I, H = sizes["T"], sizes["N"], sizes["I"], sizes["H"]
    rng = np.random.default_rng(seed)
    lstm = npylstm.LSTM(I, H, dtype=np.float64, rng=seed, **opts)
    randomize(lstm, rng, scale=0.8)
    D = 2 if opts["bidirectional"] else 1
    L, Hout = opts["num_layers"], opts["proj_size"] or H
    lead = () if unbatched else (N,)
    if unbatched:
        x = rng.standard_normal((T, I))
    else:
        x = rng.standard_normal((N, T, I) if opts["batch_first"] else (T, N, I))
    hx = None
    if with_hx:
        hx = (rng.standard_normal((D * L,) + lead + (Hout,)),
              rng.standard_normal((D * L,) + lead + (H,)))
    return lstm, x, hx, rng


@SETTINGS
@given(lstm_cases(), st.booleans())
def test_lstm_matches_torch(case, use_grad_hx):
    lstm, x, hx, rng = build(*case)
    assert_lstm_matches_torch(lstm, x, hx, rng, use_grad_hx=use_grad_hx)


@SETTINGS
@given(lstm_cases())
def test_output_shapes(case):
    opts, sizes, unbatched, _, _ = case
    lstm, x, hx, rng = build(*case)
    out, (h_n, c_n) = lstm(x, hx)
    D = 2 if opts["bidirectional"] else 1
    L, H, Hout = opts["num_layers"], sizes["H"], opts["proj_size"] or sizes["H"]
    T, N = sizes["T"], sizes["N"]
    if unbatched:
        assert out.shape == (T, D * Hout)
        assert h_n.shape == (D * L, Hout) and c_n.shape == (D * L, H)
    else:
        assert out.shape == ((N, T, D * Hout) if opts["batch_first"] else (T, N, D * Hout))
        assert h_n.shape == (D * L, N, Hout) and c_n.shape == (D * L, N, H)
    grad_x, (grad_h0, grad_c0) = lstm.backward(rng.standard_normal(out.shape))
    assert grad_x.shape == x.shape and grad_h0.shape == h_n.shape and grad_c0.shape == c_n.shape


@SETTINGS
@given(T=st.integers(1, 5), N=st.integers(1, 3), H=st.integers(1, 4), seed=st.integers(0, 999))
def test_reverse_direction_is_forward_on_flipped_input(T, N, H, seed):
    """Without torch: the _reverse half of a one-layer bidirectional LSTM is a forward
    LSTM with the reverse weights run on the time-flipped input."""
    rng = np.random.default_rng(seed)
    bi = npylstm.LSTM(2, H, bidirectional=True, dtype=np.float64, rng=seed)
    randomize(bi, rng)
    fw = npylstm.LSTM(2, H, dtype=np.float64)
    fw.load_state_dict({k.replace("_reverse", ""): v for k, v in bi.state_dict().items()
                        if k.endswith("_reverse")})
    x = rng.standard_normal((T, N, 2))
    h0, c0 = rng.standard_normal((2, N, H)), rng.standard_normal((2, N, H))
    out, (h_n, c_n) = bi(x, (h0, c0))
    ref, (ref_h, ref_c) = fw(x[::-1], (h0[1:], c0[1:]))
    assert_close("reverse output", out[:, :, H:], ref[::-1], 1e-13)
    assert_close("reverse h_n", h_n[1], ref_h[0], 1e-13)
    assert_close("reverse c_n", c_n[1], ref_c[0], 1e-13)


@SETTINGS
@given(T=st.integers(1, 4), N=st.integers(1, 3), seed=st.integers(0, 999))
def test_batch_elements_are_independent(T, N, seed):
    """Without torch: each batch element gives what it gives alone."""
    rng = np.random.default_rng(seed)
    lstm = npylstm.LSTM(2, 3, 2, bidirectional=True, proj_size=2, dtype=np.float64, rng=seed)
    x = rng.standard_normal((T, N, 2))
    h0, c0 = rng.standard_normal((4, N, 2)), rng.standard_normal((4, N, 3))
    out, (h_n, c_n) = lstm(x, (h0, c0))
    for b in range(N):
        out_b, (h_b, c_b) = lstm(x[:, b:b + 1], (h0[:, b:b + 1], c0[:, b:b + 1]))
        assert_close(f"output[:, {b}]", out[:, b:b + 1], out_b, 1e-13)
        assert_close(f"h_n[:, {b}]", h_n[:, b:b + 1], h_b, 1e-13)
        assert_close(f"c_n[:, {b}]", c_n[:, b:b + 1], c_b, 1e-13)
