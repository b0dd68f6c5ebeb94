"""The LSTM variants: peephole, input_forget (CIFG), clip and the ablations.

- finite differences (float64) for every variant with layers, bidirectional,
  proj_size, lengths, dropout and initial states;
- an independent step written from the contract's equations in this file,
  against the plain cell (npylstm/functional/cell.py) for every variant;
- the plain cell run over T steps, forward and backward, against the fast
  layer (npylstm/functional/layer.py) for every variant;
- a fixed gate is torch's LSTM with a huge bias on that gate's rows (sigmoid = 1
  exactly in float64): values and gradients against torch;
- unused rows get a zero gradient; parameter names, order and initialisation;
  batch_first / unbatched agree with time-major; every ValueError.

onnxruntime parity is in test_variants_onnx.py, the default path in
test_variants_default.py.
"""
import numpy as np
import pytest

import npylstm
from npylstm.functional import lstm_cell_backward, lstm_cell_forward, lstm_layer_backward, \
    lstm_layer_forward
from npylstm.gradcheck import check_lstm

TOL = 1e-6          # central differences with eps = 1e-6 in float64 reach ~1e-8
CLIP = 0.7          # with weights in U(-0.8, 0.8) and unit inputs, some |z| > 0.7, some below

VARIANTS = {
    "peephole": dict(peephole=True),
    "input_forget": dict(input_forget=True),
    "clip": dict(clip=CLIP),
    "NIG": dict(ablate=("input_gate",)),
    "NFG": dict(ablate=("forget_gate",)),
    "NOG": dict(ablate=("output_gate",)),
    "NIAF": dict(ablate=("input_activation",)),
    "NOAF": dict(ablate=("output_activation",)),
    "CIFG+peephole+clip": dict(peephole=True, input_forget=True, clip=CLIP),
    "peephole+clip+NOG+NIAF+NOAF": dict(peephole=True, clip=CLIP,
                                        ablate=("output_gate", "input_activation", "output_activation")),
    "peephole+NIG+NFG": dict(peephole=True, ablate=("input_gate", "forget_gate")),
}


def randomize(module, rng, scale=0.8):
    for p in module.parameters():
        p.data[...] = rng.uniform(-scale, scale, p.shape)


def variant_cell_kwargs(options, rng, H):
    """The cell's keyword arguments for an LSTM's options: peephole becomes 3 vectors."""
    kwargs = {k: v for k, v in options.items() if k != "peephole"}
    if options.get("peephole"):
        kwargs["peephole"] = tuple(rng.uniform(-0.8, 0.8, H) for _ in range(3))
    return kwargs


# An independent step, written from the contract, not from npylstm's code.

def reference_step(x, h, c, W_ih, W_hh, b, peephole=None, input_forget=False, clip=None, ablate=()):
    sig = lambda a: 1 / (1 + np.exp(-a))
    clip_ = (lambda a: a) if clip is None else (lambda a: np.minimum(np.maximum(a, -clip), clip))
    H = c.shape[1]
    z = x @ W_ih.T + h @ W_hh.T + b
    zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
    p_i, p_f, p_o = peephole if peephole is not None else (0, 0, 0)
    i = np.ones_like(c) if "input_gate" in ablate else sig(clip_(zi + p_i * c))
    f = 1 - i if input_forget else np.ones_like(c) if "forget_gate" in ablate else sig(clip_(zf + p_f * c))
    g = clip_(zg) if "input_activation" in ablate else np.tanh(clip_(zg))
    c_new = f * c + i * g
    o = np.ones_like(c) if "output_gate" in ablate else sig(clip_(zo + p_o * c_new))
    h_new = o * (c_new if "output_activation" in ablate else np.tanh(c_new))
    return h_new, c_new


@pytest.mark.parametrize("name", VARIANTS)
def test_cell_matches_an_independent_step(name):
    rng = np.random.default_rng(1)
    N, I, H = 5, 3, 4
    x, h, c = rng.standard_normal((N, I)), rng.standard_normal((N, H)), 2 * rng.standard_normal((N, H))
    W_ih, W_hh = rng.uniform(-1, 1, (4 * H, I)), rng.uniform(-1, 1, (4 * H, H))
    b_ih, b_hh = rng.uniform(-1, 1, 4 * H), rng.uniform(-1, 1, 4 * H)
    kwargs = variant_cell_kwargs(VARIANTS[name], rng, H)
    h_ref, c_ref = reference_step(x, h, c, W_ih, W_hh, b_ih + b_hh, **kwargs)
    h_npy, c_npy, _ = lstm_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh, **kwargs)
    assert np.allclose(h_npy, h_ref, rtol=0, atol=1e-13), f"{name}: h differs"
    assert np.allclose(c_npy, c_ref, rtol=0, atol=1e-13), f"{name}: c differs"


def make_case(options, num_layers=2, bidirectional=True, proj_size=2, dropout=0.0, T=4, N=3, I=2,
              H=3, seed=0):
    rng = np.random.default_rng(seed)
    lstm = npylstm.LSTM(I, H, num_layers, dropout=dropout, bidirectional=bidirectional,
                        proj_size=proj_size, dtype=np.float64, rng=seed, **options)
    randomize(lstm, rng)
    D, Hout = 2 if bidirectional else 1, proj_size or H
    x = rng.standard_normal((T, N, I))
    hx = (rng.standard_normal((D * num_layers, N, Hout)), rng.standard_normal((D * num_layers, N, H)))
    lengths = np.array([T, 2, T - 1])[:N]
    return lstm, x, hx, lengths


def assert_gradcheck(results, where):
    bad = [f"{r.name}: {r.max_rel_error:.2e}" for r in results if not r.max_rel_error <= TOL]
    assert not bad, f"{where}: finite differences disagree: " + ", ".join(bad)


@pytest.mark.parametrize("path", ["factored", "direct"])
@pytest.mark.parametrize("name", VARIANTS)
def test_gradcheck_layers_bidirectional_proj_lengths(name, path, monkeypatch):
    from npylstm.functional import layer
    if path == "direct":
        monkeypatch.setattr(layer, "LOCAL_BLOCK", 1)         # the backward without trick 9
    lstm, x, hx, lengths = make_case(VARIANTS[name])
    assert_gradcheck(check_lstm(lstm, x, hx, lengths), name)


@pytest.mark.parametrize("name", ["CIFG+peephole+clip", "peephole+clip+NOG+NIAF+NOAF"])
def test_gradcheck_with_dropout_and_no_projection(name):
    lstm, x, hx, lengths = make_case(VARIANTS[name], num_layers=3, bidirectional=False,
                                     proj_size=0, dropout=0.4, seed=3)
    assert_gradcheck(check_lstm(lstm, x, hx, lengths), name)


def test_clip_case_clips_some_pre_activations():
    """The clip cases above are only meaningful if some |z| > clip and some not.
    Layer 0 forward, step 0, from the case's own arrays (independent of npylstm)."""
    for name in ("clip", "CIFG+peephole+clip", "peephole+clip+NOG+NIAF+NOAF"):
        lstm, x, (h0, c0), _ = make_case(VARIANTS[name])
        p = dict(lstm.named_parameters())
        H = lstm.hidden_size
        z = (x[0] @ p["weight_ih_l0"].data.T + h0[0] @ p["weight_hh_l0"].data.T
             + p["bias_ih_l0"].data + p["bias_hh_l0"].data)
        if lstm.peephole:
            z[:, :H] += p["weight_ci_l0"].data * c0[0]
            z[:, H:2 * H] += p["weight_cf_l0"].data * c0[0]
        z = z[:, :3 * H]                            # z_o needs c_1; i, f, g suffice
        clipped = np.abs(z) > CLIP
        assert clipped.any() and not clipped.all(), f"{name}: {clipped.sum()} of {z.size} clipped"
        assert np.min(np.abs(np.abs(z) - CLIP)) > 1e-4, f"{name}: a value sits on the clip bound"


def cell_loop_forward_backward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, g_out, g_h, g_c, kwargs):
    """T steps of the plain cell, then BPTT through the cells' own backward."""
    h, c, caches, outs = h0, c0, [], []
    for t in range(x.shape[0]):
        h, c, cache = lstm_cell_forward(x[t], h, c, W_ih, W_hh, b_ih, b_hh, **kwargs)
        caches.append(cache)
        outs.append(h)
    grads, grad_x = {}, np.zeros_like(x)
    dh, dc = g_h, g_c
    for t in reversed(range(x.shape[0])):
        grad_x[t], dh, dc, step = lstm_cell_backward(dh + g_out[t], dc, caches[t])
        for k, v in step.items():
            grads[k] = grads.get(k, 0) + v
    return np.stack(outs), h, c, grad_x, dh, dc, grads


def layer_case(name, T, N, I, H, seed):
    """Random inputs, initial state, weights, output gradients and the cell's
    variant arguments for one layer of variant ``name``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, N, I))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    W_ih, W_hh = rng.uniform(-1, 1, (4 * H, I)), rng.uniform(-1, 1, (4 * H, H))
    b_ih, b_hh = rng.uniform(-1, 1, 4 * H), rng.uniform(-1, 1, 4 * H)
    g_out, g_h, g_c = rng.standard_normal((T, N, H)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    kwargs = variant_cell_kwargs(VARIANTS[name], rng, H)
    return x, h0, c0, W_ih, W_hh, b_ih, b_hh, g_out, g_h, g_c, kwargs


@pytest.mark.parametrize("path", ["factored", "direct"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", VARIANTS)
def test_layer_matches_the_cell_loop(name, reverse, path, monkeypatch):
    """Both backward paths of a variant (layer.py, trick 9 and the direct
    step, chosen by shape) against the plain cell run step by step."""
    from npylstm.functional import layer as layer_module
    if path == "direct":
        monkeypatch.setattr(layer_module, "LOCAL_BLOCK", 1)  # not one step fits: no trick 9
    x, h0, c0, W_ih, W_hh, b_ih, b_hh, g_out, g_h, g_c, kwargs = layer_case(name, 5, 4, 3, 4, seed=2)
    order = slice(None, None, -1) if reverse else slice(None)
    out_c, h_c, c_c, gx_c, gh_c, gc_c, grads_c = cell_loop_forward_backward(
        x[order], h0, c0, W_ih, W_hh, b_ih, b_hh, g_out[order], g_h, g_c, kwargs)
    out, h_n, c_n, cache = lstm_layer_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, reverse=reverse, **kwargs)
    gx, gh, gc, grads = lstm_layer_backward(g_out, g_h, g_c, cache)
    pairs = dict(output=(out, out_c[order]), h_n=(h_n, h_c), c_n=(c_n, c_c), grad_x=(gx, gx_c[order]),
                 grad_h0=(gh, gh_c), grad_c0=(gc, gc_c))
    pairs.update(("grad " + k, (grads[k], grads_c[k])) for k in grads_c)
    assert set(grads) == set(grads_c), f"{name}: gradient names {sorted(grads)} vs {sorted(grads_c)}"
    for what, (layer, cell) in pairs.items():
        err = np.max(np.abs(layer - cell))
        assert err <= 1e-12 * max(1, np.max(np.abs(cell))), f"{name}: {what} layer vs cell loop {err:.2e}"


@pytest.mark.parametrize("name", VARIANTS)
def test_backward_factors_in_blocks_of_steps_are_the_same_numbers(name, monkeypatch):
    """Trick 9 computes a variant's backward factors for blocks of steps
    (layer.LOCAL_BLOCK): elementwise work, so the block size must not change
    a bit. Blocks of 4 steps (T = 7: 4 and 3), of 5 (5 and 2) and all at
    once, forward and reverse, with lengths."""
    from npylstm.functional import layer
    T, N, H = 7, 4, 4
    x, h0, c0, W_ih, W_hh, b_ih, b_hh, g_out, g_h, g_c, kwargs = layer_case(name, T, N, 3, H, seed=5)
    for reverse in (False, True):
        for batch_sizes in (None, np.array([4, 4, 3, 3, 2, 1, 1])):
            results = []
            for steps in (4, 5, T):
                monkeypatch.setattr(layer, "LOCAL_BLOCK", steps * 4 * H * N)
                *_, cache = lstm_layer_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh, reverse=reverse,
                                               batch_sizes=batch_sizes, **kwargs)
                gx, gh, gc, grads = lstm_layer_backward(g_out, g_h, g_c, cache)
                results.append(dict(grad_x=gx, grad_h0=gh, grad_c0=gc, **grads))
            for other in results[1:]:
                for what in results[0]:
                    assert np.array_equal(results[0][what], other[what]), \
                        f"{name}, reverse={reverse}, lengths={batch_sizes is not None}: {what}"


@pytest.mark.reference
@pytest.mark.parametrize("gate", ["input_gate", "forget_gate", "output_gate"])
def test_fixed_gate_is_torch_with_a_saturating_bias(gate):
    """Gate fixed at 1 == torch's LSTM with +1e4 on that gate's bias rows (sigmoid(1e4) is
    exactly 1.0 in float64, and its derivative s (1 - s) exactly 0)."""
    import torch
    from helpers import assert_close, torch_lstm_like
    rng = np.random.default_rng(4)
    lstm = npylstm.LSTM(3, 4, 2, bidirectional=True, dtype=np.float64, rng=0, ablate=(gate,))
    randomize(lstm, rng)
    H = lstm.hidden_size
    rows = {"input_gate": slice(0, H), "forget_gate": slice(H, 2 * H), "output_gate": slice(3 * H, 4 * H)}[gate]
    twin = torch_lstm_like(lstm)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            if name.startswith("bias_ih"):
                p[rows] += 1e4
    x = rng.standard_normal((5, 3, 3))
    out, (h_n, c_n) = lstm(x)
    g = rng.standard_normal(out.shape)
    grad_x, _ = lstm.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    t_out, (t_h, t_c) = twin(tx)
    (t_out * torch.from_numpy(g)).sum().backward()
    assert_close(f"{gate}: output", out, t_out, 1e-12)
    assert_close(f"{gate}: c_n", c_n, t_c, 1e-12)
    assert_close(f"{gate}: grad input", grad_x, tx.grad, 1e-12)
    for name, p in twin.named_parameters():
        assert_close(f"{gate}: grad {name}", getattr(lstm, name).grad, p.grad, 1e-12)


UNUSED = {
    # options: (gate rows without gradient, peephole vectors without gradient)
    "input_forget": (dict(input_forget=True, peephole=True), ["f"], ["weight_cf"]),
    "NIG": (dict(ablate=("input_gate",), peephole=True), ["i"], ["weight_ci"]),
    "NFG": (dict(ablate=("forget_gate",), peephole=True), ["f"], ["weight_cf"]),
    "NOG": (dict(ablate=("output_gate",), peephole=True), ["o"], ["weight_co"]),
}


@pytest.mark.parametrize("name", UNUSED)
def test_unused_rows_get_zero_gradient(name):
    options, gates, vectors = UNUSED[name]
    lstm, x, hx, lengths = make_case(options, proj_size=0)
    out, (h_n, c_n) = lstm(x, hx, lengths)
    rng = np.random.default_rng(5)
    lstm.backward(rng.standard_normal(out.shape), (rng.standard_normal(h_n.shape), rng.standard_normal(c_n.shape)))
    H = lstm.hidden_size
    block = dict(i=0, f=1, g=2, o=3)
    for pname, p in lstm.named_parameters():
        base = pname.split("_l")[0]
        if base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            for gate in "ifgo":
                rows = p.grad[block[gate] * H:(block[gate] + 1) * H]
                if gate in gates:
                    assert np.all(rows == 0), f"{name}: {pname} rows of gate {gate} have gradient"
                else:
                    assert np.any(rows != 0), f"{name}: {pname} rows of gate {gate} have none"
        elif base in vectors:
            assert np.all(p.grad == 0), f"{name}: {pname} has a gradient"
        else:
            assert np.any(p.grad != 0), f"{name}: {pname} has no gradient"
    assert all(k in lstm.state_dict() for k in ("weight_ci_l1_reverse", "weight_cf_l1", "weight_co_l0"))


def test_peephole_parameters_names_order_shapes_and_initialisation():
    H = 50
    lstm = npylstm.LSTM(3, H, 2, bidirectional=True, proj_size=4, rng=0, peephole=True)
    names = [n for n, _ in lstm.named_parameters()]
    layer = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_ci", "weight_cf", "weight_co"]
    expected = [f"{n}_l{k}{s}" for k in range(2) for s in ("", "_reverse") for n in layer]
    assert names == expected, f"named_parameters order: {names}"
    bound = 1 / np.sqrt(H)
    for n, p in lstm.named_parameters():
        if n.startswith(("weight_ci", "weight_cf", "weight_co")):
            assert p.shape == (H,) and p.dtype == np.float32, f"{n}: {p.shape} {p.dtype}"
            assert np.all(np.abs(p.data) <= bound) and np.std(p.data) > bound / 3, f"{n}: not U(-b, b)"
    # The defaults draw the same initial values as before the variants.
    plain = npylstm.LSTM(3, H, 2, bidirectional=True, proj_size=4, rng=0)
    for n, p in plain.named_parameters():
        assert np.array_equal(p.data, npylstm.LSTM(3, H, 2, bidirectional=True, proj_size=4, rng=0,
                                                   input_forget=True, clip=1.0,
                                                   ablate=("output_activation",)).state_dict()[n]), n
    lstm.load_state_dict(lstm.state_dict())
    with pytest.raises(ValueError, match="weight_ci_l0"):
        plain.load_state_dict(lstm.state_dict())


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_changes_the_result(name):
    """Each option reaches the math: with the same weights, the output differs from the
    standard LSTM's (the peephole only once its vectors are non-zero)."""
    lstm, x, hx, lengths = make_case(VARIANTS[name])
    plain, _, _, _ = make_case({})
    state = {k: v for k, v in lstm.state_dict().items() if not k.startswith(("weight_c"))}
    plain.load_state_dict(state)
    out, _ = lstm(x, hx, lengths)
    ref, _ = plain(x, hx, lengths)
    assert np.max(np.abs(out - ref)) > 1e-3, f"{name}: same output as the standard LSTM"


def test_zero_peepholes_are_the_standard_lstm():
    lstm, x, hx, lengths = make_case(dict(peephole=True))
    for n, p in lstm.named_parameters():
        if n.startswith(("weight_ci", "weight_cf", "weight_co")):
            p.data[...] = 0
    plain, _, _, _ = make_case({})
    plain.load_state_dict({k: v for k, v in lstm.state_dict().items() if not k.startswith("weight_c")})
    out, (h_n, c_n) = lstm(x, hx, lengths)
    ref, (h_ref, c_ref) = plain(x, hx, lengths)
    for what, a, b in [("output", out, ref), ("h_n", h_n, h_ref), ("c_n", c_n, c_ref)]:
        assert np.allclose(a, b, rtol=0, atol=1e-14), f"zero peepholes: {what} differs"


@pytest.mark.parametrize("name", ["CIFG+peephole+clip", "peephole+clip+NOG+NIAF+NOAF"])
def test_batch_first_and_unbatched_agree_with_time_major(name):
    lstm, x, hx, lengths = make_case(VARIANTS[name])
    out, (h_n, c_n) = lstm(x, hx, lengths)
    g = np.random.default_rng(6).standard_normal(out.shape)
    grad_x, (grad_h0, grad_c0) = lstm.backward(g)
    grads = {n: p.grad.copy() for n, p in lstm.named_parameters()}

    bf = npylstm.LSTM(2, 3, 2, batch_first=True, bidirectional=True, proj_size=2, dtype=np.float64,
                      **VARIANTS[name])
    bf.load_state_dict(lstm.state_dict())
    out_bf, (h_bf, c_bf) = bf(x.transpose(1, 0, 2), hx, lengths)
    gx_bf, _ = bf.backward(g.transpose(1, 0, 2))
    assert np.array_equal(out_bf.transpose(1, 0, 2), out), f"{name}: batch_first output"
    assert np.array_equal(gx_bf.transpose(1, 0, 2), grad_x), f"{name}: batch_first grad input"
    for n, p in bf.named_parameters():
        assert np.allclose(p.grad, grads[n], rtol=0, atol=1e-13), f"{name}: batch_first grad {n}"

    lstm.zero_grad()
    b = 1
    L = lengths[b]
    out_u, (h_u, c_u) = lstm(x[:L, b], (hx[0][:, b], hx[1][:, b]))
    ref, (h_ref, c_ref) = lstm(x[:L, b:b + 1], (hx[0][:, b:b + 1], hx[1][:, b:b + 1]))
    assert np.allclose(out_u, out[:L, b], rtol=0, atol=1e-13), f"{name}: unbatched vs lengths output"
    assert np.allclose(h_u, h_n[:, b], rtol=0, atol=1e-13), f"{name}: unbatched vs lengths h_n"
    assert np.allclose(c_u, c_n[:, b], rtol=0, atol=1e-13), f"{name}: unbatched vs lengths c_n"


@pytest.mark.parametrize("kwargs, match", [
    (dict(ablate=("forget",)), "unknown name"),
    (dict(ablate=("input_gate", "cell")), "unknown name"),
    (dict(clip=0), "clip"),
    (dict(clip=-1.0), "clip"),
    (dict(clip=float("inf")), "clip"),
    (dict(clip=float("nan")), "clip"),
    (dict(clip="1"), "clip"),
    (dict(clip=True), "clip"),
    (dict(input_forget=True, ablate=("input_gate",)), "input_forget"),
    (dict(input_forget=True, ablate=("forget_gate",)), "input_forget"),
])
def test_bad_variant_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        npylstm.LSTM(2, 3, **kwargs)
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((2, 2)), np.zeros((2, 3)), np.zeros((2, 3)),
            rng.standard_normal((12, 2)), rng.standard_normal((12, 3)))
    with pytest.raises(ValueError, match=match):
        lstm_cell_forward(*args, **kwargs)
    with pytest.raises(ValueError, match=match):
        lstm_layer_forward(args[0][None], *args[1:], **kwargs)


def test_variant_options_are_keyword_only_and_shown_in_repr():
    with pytest.raises(TypeError):
        npylstm.LSTM(2, 3, 1, True, False, 0.0, False, 0, np.float32, None, True)
    lstm = npylstm.LSTM(2, 3, peephole=True, input_forget=True, clip=2, ablate=["output_activation"])
    assert lstm.clip == 2.0 and lstm.ablate == ("output_activation",)
    assert repr(lstm) == ("LSTM(2, 3, peephole=True, input_forget=True, clip=2.0, "
                          "ablate=('output_activation',))")


@pytest.mark.parametrize("name", VARIANTS)
def test_no_grad_gives_the_same_values(name):
    lstm, x, hx, lengths = make_case(VARIANTS[name])
    out, (h_n, c_n) = lstm(x, hx, lengths)
    with npylstm.no_grad():
        out_ng, (h_ng, c_ng) = lstm(x, hx, lengths)
    for what, a, b in [("output", out_ng, out), ("h_n", h_ng, h_n), ("c_n", c_ng, c_n)]:
        assert np.allclose(a, b, rtol=0, atol=1e-14), f"{name}: no_grad {what} differs"
    with pytest.raises(RuntimeError, match="no_grad"):
        lstm.backward(np.ones_like(out))
