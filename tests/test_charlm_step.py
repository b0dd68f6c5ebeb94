"""CharLM without torch: finite differences, and the truncated-BPTT conventions of
npylstm.charlm.step (state carried across chunks, gradient cut, get_batch, evaluate)."""
import numpy as np
import pytest

import npylstm
from npylstm.charlm import CharLM, evaluate, get_batch, num_chunks, train_step
from npylstm.gradcheck import gradcheck
from npylstm.text import batchify


@pytest.mark.parametrize("num_layers", [1, 2])
def test_charlm_finite_differences(num_layers):
    rng = np.random.default_rng(num_layers)
    V, H, E, T, N = 5, 3, 2, 4, 2
    model = CharLM(V, H, num_layers, E, dtype=np.float64, rng=0, peephole=num_layers == 2)
    ids = rng.integers(0, V, (T, N))
    arrays = {"h_0": rng.standard_normal((num_layers, N, H)),
              "c_0": rng.standard_normal((num_layers, N, H))}
    params = dict(model.named_parameters())
    arrays.update((name, p.data) for name, p in params.items())

    def forward():
        return model(ids, (arrays["h_0"], arrays["c_0"]))

    def backward(grads):
        model.zero_grad()
        grad_logits, grad_hx = grads
        grad_h0, grad_c0 = model.backward(grad_logits, grad_hx)
        result = {"h_0": grad_h0, "c_0": grad_c0}
        result.update((name, p.grad.copy()) for name, p in params.items())
        return result

    for r in gradcheck(forward, backward, arrays):
        assert r.max_rel_error < 1e-6, f"{r.name}: relative error {r.max_rel_error:.2e}"


def test_cross_entropy_finite_differences():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4)) * 2
    target = np.array([0, 3, -100, 1, 1, 2])
    for reduction in ["mean", "sum", "none"]:
        crit = npylstm.CrossEntropyLoss(reduction)
        results = gradcheck(lambda: crit(logits, target), lambda g: {"logits": crit.backward(g)},
                            {"logits": logits})
        assert results[0].max_rel_error < 1e-7, (reduction, results[0])


def test_get_batch_layout():
    streams = batchify(np.arange(40), 4)                       # (10, 4): column b is 10b .. 10b+9
    assert num_chunks(streams, 4) == 3                         # 9 targets per stream: 4 + 4 + 1
    x, y = get_batch(streams, 0, 4)
    np.testing.assert_array_equal(x[:, 1], [10, 11, 12, 13])
    np.testing.assert_array_equal(y, x + 1)                    # the next character of each stream
    x, y = get_batch(streams, 2, 4)
    assert x.shape == (1, 4) and y[0, 3] == 39                 # the last chunk is shorter
    with pytest.raises(ValueError, match="chunk 3"):
        get_batch(streams, 3, 4)


def test_carried_state_equals_one_long_forward():
    """Chunk after chunk with the state carried gives the losses of one forward over
    the whole streams (with lr = 0 nothing else changes between chunks)."""
    rng = np.random.default_rng(0)
    V, B, T = 6, 3, 4
    streams = batchify(rng.integers(0, V, 3 * 15), B)          # (15, 3): chunks of 4, 4, 4, 2
    model = CharLM(V, 5, 2, 3, dtype=np.float64, rng=1)
    opt = npylstm.SGD(model.parameters(), lr=0.0)
    crit = npylstm.CrossEntropyLoss()
    state, losses = None, []
    for k in range(num_chunks(streams, T)):
        loss, state = train_step(model, opt, crit, *get_batch(streams, k, T), state, clip=1.0)
        losses.append(loss)
    logits, (h_n, c_n) = model(streams[:-1])                    # all 14 steps at once
    per_char = npylstm.CrossEntropyLoss("none")(logits.reshape(-1, V), streams[1:].reshape(-1))
    per_step = per_char.reshape(14, B).mean(axis=1)
    expected = [per_step[t:t + T].mean() for t in range(0, 14, T)]
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    np.testing.assert_allclose(state[0], h_n, rtol=1e-12)
    np.testing.assert_allclose(state[1], c_n, rtol=1e-12)
    assert all(np.all(p.grad == 0) for p in model.parameters())   # zero_grad after the step
    # evaluate carries the state the same way, whatever the chunk length
    mean_nats = per_char.mean()
    for seq_len in [1, 4, 100]:
        assert abs(evaluate(model, streams, seq_len) - mean_nats) < 1e-12
    ids = streams.T.reshape(-1)                                # the stream batchify laid out
    assert abs(evaluate(model, ids, 5, batch_size=B) - mean_nats) < 1e-12
    assert model.training                                      # evaluate restores the mode



def test_charlm_no_grad():
    model = CharLM(5, 4, 1, 3, rng=0)
    with npylstm.no_grad():
        logits, _ = model(np.zeros((3, 2), np.int64))
    assert logits.shape == (3, 2, 5)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones((3, 2, 5)))
    for sub in model.modules():
        assert getattr(sub, "_cache", None) in (None, npylstm.module.NO_CACHE)
