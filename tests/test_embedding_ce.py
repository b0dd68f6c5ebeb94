"""npylstm.Embedding and npylstm.CrossEntropyLoss against torch in float64, and their errors."""
import numpy as np
import pytest
import torch

import npylstm
from helpers import _t, assert_close

pytestmark = pytest.mark.reference


# ---------------------------------------------------------------- Embedding

@pytest.mark.parametrize("shape", [(), (7,), (4, 3), (2, 3, 2)])
def test_embedding_matches_torch(shape):
    rng = np.random.default_rng(len(shape))
    emb = npylstm.Embedding(5, 4, dtype=np.float64, rng=0)
    twin = torch.nn.Embedding(5, 4).double()
    twin.load_state_dict({"weight": torch.from_numpy(emb.weight.data.copy())})
    ids = rng.integers(0, 5, shape)                           # 5 classes: repeats are certain
    out = emb(ids)
    grad_out = rng.standard_normal(out.shape)
    assert emb.backward(grad_out) is None
    t_out = twin(torch.from_numpy(ids))
    (t_out * torch.from_numpy(grad_out)).sum().backward()
    assert out.shape == shape + (4,)
    assert_close("out", out, t_out, 0)                        # a lookup copies: exactly equal
    assert_close("grad weight", emb.weight.grad, twin.weight.grad)


def test_embedding_repeated_index_adds_up():
    emb = npylstm.Embedding(4, 2, dtype=np.float64, rng=0)
    emb(np.array([[1, 3], [1, 1]]))
    emb.backward(np.arange(8.0).reshape(2, 2, 2))
    # row 1 is looked up at (0,0), (1,0), (1,1): its gradient is the sum of the three
    np.testing.assert_array_equal(emb.weight.grad, [[0, 0], [0 + 4 + 6, 1 + 5 + 7], [0, 0], [2, 3]])
    emb(np.array([3]))
    emb.backward(np.ones((1, 2)))                            # accumulates across backwards
    np.testing.assert_array_equal(emb.weight.grad[3], [3, 4])


def test_embedding_init_dtype_and_no_grad():
    emb = npylstm.Embedding(1000, 50, rng=1)
    w = emb.weight.data
    assert w.dtype == np.float32 and w.shape == (1000, 50)
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01   # N(0, 1), as torch initialises
    with npylstm.no_grad():
        emb(np.array([1, 2]))
    with pytest.raises(RuntimeError, match="no_grad"):
        emb.backward(np.ones((2, 50)))


@pytest.mark.parametrize("ids, match", [
    (np.array([0.0, 1.0]), "integer"),
    (np.array([True, False]), "integer"),
    (np.array([0, 5]), r"\[0, 5\)"),
    (np.array([-1, 0]), r"\[0, 5\)"),
])
def test_embedding_errors(ids, match):
    emb = npylstm.Embedding(5, 3)
    with pytest.raises(ValueError, match=match):
        emb(ids)


def test_embedding_backward_shape_error():
    emb = npylstm.Embedding(5, 3)
    emb(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 4, 3\), got \(2, 4, 2\)"):
        emb.backward(np.ones((2, 4, 2)))


# ---------------------------------------------------------------- CrossEntropyLoss

def _torch_ce(logits, target, reduction, ignore_index, grad):
    tl = _t(logits)
    loss = torch.nn.CrossEntropyLoss(reduction=reduction, ignore_index=ignore_index)(
        tl, torch.from_numpy(np.asarray(target)))
    loss.backward(None if grad is None else torch.from_numpy(np.asarray(grad, dtype=np.float64)))
    return loss, tl.grad


CE_CASES = {
    "plain": (np.array([0, 2, 1, 3, 2]), -100),
    "ignored": (np.array([0, -100, 1, -100, 2]), -100),
    "ignore_index 2": (np.array([0, 2, 1, 3, 2]), 2),
    "all ignored": (np.array([-100, -100, -100, -100, -100]), -100),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CE_CASES))
@pytest.mark.parametrize("upstream", ["default", "random"])
def test_cross_entropy_matches_torch(reduction, case, upstream):
    rng = np.random.default_rng(0)
    target, ignore_index = CE_CASES[case]
    logits = rng.standard_normal((5, 4)) * 3
    crit = npylstm.CrossEntropyLoss(reduction, ignore_index=ignore_index)
    loss = crit(logits, target)
    grad = None if upstream == "default" and reduction != "none" else rng.standard_normal(np.shape(loss))
    grad_logits = crit.backward(grad)
    t_loss, t_grad = _torch_ce(logits, target, reduction, ignore_index, grad)
    assert grad_logits.shape == logits.shape and np.shape(loss) == tuple(t_loss.shape)
    if case == "all ignored" and reduction == "mean":
        assert np.isnan(loss) and torch.isnan(t_loss)           # 0 / 0, as torch gives
    else:
        assert_close("loss", loss, t_loss)
    assert_close("grad logits", grad_logits, t_grad)
    if reduction == "none":
        assert np.all(loss[target == ignore_index] == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_unbatched_matches_torch(reduction):
    logits = np.array([0.5, -1.0, 2.0])
    crit = npylstm.CrossEntropyLoss(reduction)
    loss = crit(logits, np.array(2))
    grad_logits = crit.backward(None if reduction != "none" else np.array(0.7))
    t_loss, t_grad = _torch_ce(logits, np.array(2), reduction, -100,
                               None if reduction != "none" else np.array(0.7))
    assert np.shape(loss) == () and grad_logits.shape == (3,)
    assert_close("loss", loss, t_loss)
    assert_close("grad logits", grad_logits, t_grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_extreme_logits(dtype):
    """Logits of +-1e4: exp(1e4) overflows, so only the max-subtracted form is finite."""
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], dtype)
    target = np.array([1, 2, 0])
    for reduction in ["mean", "sum", "none"]:
        crit = npylstm.CrossEntropyLoss(reduction)
        loss = crit(logits, target)
        grad_logits = crit.backward(None if reduction != "none" else np.ones(3))
        t_loss, t_grad = _torch_ce(logits.astype(np.float64), target, reduction, -100,
                                   None if reduction != "none" else np.ones(3))
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad_logits))
        assert loss.dtype == dtype and grad_logits.dtype == dtype
        assert_close(f"loss {reduction}", loss, t_loss, 1e-6 if dtype == np.float32 else 1e-12)
        assert_close(f"grad {reduction}", grad_logits, t_grad, 1e-6 if dtype == np.float32 else 1e-12)


def test_cross_entropy_no_grad():
    crit = npylstm.CrossEntropyLoss()
    with npylstm.no_grad():
        crit(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(RuntimeError, match="no_grad"):
        crit.backward()


@pytest.mark.parametrize("logits, target, match", [
    (np.zeros((4, 3)), np.zeros(3, np.int64), r"expected target of shape \(4,\).*got \(3,\)"),
    (np.zeros((4, 3)), np.zeros((4, 1), np.int64), r"expected target of shape \(4,\)"),
    (np.zeros(3), np.zeros(1, np.int64), r"expected target of shape \(\)"),
    (np.zeros((2, 3, 4)), np.zeros((2, 3), np.int64), r"logits of shape \(N, C\) or \(C,\)"),
    (np.zeros((4, 0)), np.zeros(4, np.int64), "at least one class"),
    (np.zeros((4, 3)), np.zeros(4), "integer"),
    (np.zeros((4, 3)), np.zeros(4, bool), "integer"),
    (np.zeros((4, 3)), np.array([0, 1, 3, 0]), r"\[0, 3\).*\[3\]"),
    (np.zeros((4, 3)), np.array([0, -1, 2, 0]), r"\[0, 3\).*\[-1\]"),
    (np.zeros((4, 3)), np.array([0, -100, 2, 0]), None),     # ignore_index: no error
])
def test_cross_entropy_errors(logits, target, match):
    crit = npylstm.CrossEntropyLoss()
    if match is None:
        crit(logits, target)
        return
    with pytest.raises(ValueError, match=match):
        crit(logits, target)


def test_cross_entropy_argument_errors():
    with pytest.raises(ValueError, match="reduction"):
        npylstm.CrossEntropyLoss("avg")
    with pytest.raises(ValueError, match="ignore_index"):
        npylstm.CrossEntropyLoss(ignore_index=1.5)
    crit = npylstm.CrossEntropyLoss("none")
    crit(np.zeros((4, 3)), np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"expected grad of shape \(4,\), got \(3,\)"):
        crit.backward(np.ones(3))
