"""npylstm.charlm.CharLM and its truncated-BPTT training step against torch in float64."""
import numpy as np
import pytest
import torch

import npylstm
from helpers import assert_close, randomize
from npylstm.charlm import CharLM, get_batch, num_chunks, train_step
from npylstm.text import batchify

pytestmark = pytest.mark.reference


class TorchCharLM(torch.nn.Module):
    """The same model in torch: the same three attribute names, so the same state_dict keys."""

    def __init__(self, V, H, L, E):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, E)
        self.lstm = torch.nn.LSTM(E, H, L)
        self.linear = torch.nn.Linear(H, V)

    def forward(self, ids, hx=None):
        output, hx = self.lstm(self.embedding(ids), hx)
        return self.linear(output), hx


def twin_of(model):
    twin = TorchCharLM(model.vocab_size, model.lstm.hidden_size, model.lstm.num_layers,
                       model.embedding.embedding_dim).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return twin


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_charlm_matches_torch(num_layers, with_state):
    rng = np.random.default_rng(num_layers + 2 * with_state)
    V, H, E, T, N = 7, 5, 3, 6, 4
    model = CharLM(V, H, num_layers, E, dtype=np.float64, rng=0)
    randomize(model, rng)                                     # distinct non-zero biases
    twin = twin_of(model)
    assert list(model.state_dict()) == list(twin.state_dict())
    ids = rng.integers(0, V, (T, N))
    hx = (rng.standard_normal((num_layers, N, H)), rng.standard_normal((num_layers, N, H))) \
        if with_state else None
    logits, (h_n, c_n) = model(ids, hx)
    g_logits, g_h, g_c = (rng.standard_normal(a.shape) for a in (logits, h_n, c_n))
    grad_h0, grad_c0 = model.backward(g_logits, (g_h, g_c))

    t_hx = None if hx is None else tuple(torch.tensor(a, requires_grad=True) for a in hx)
    t_logits, (t_h, t_c) = twin(torch.from_numpy(ids), t_hx)
    ((t_logits * torch.from_numpy(g_logits)).sum() + (t_h * torch.from_numpy(g_h)).sum()
     + (t_c * torch.from_numpy(g_c)).sum()).backward()

    assert logits.shape == (T, N, V)
    assert_close("logits", logits, t_logits)
    assert_close("h_n", h_n, t_h)
    assert_close("c_n", c_n, t_c)
    if with_state:
        assert_close("grad h_0", grad_h0, t_hx[0].grad)
        assert_close("grad c_0", grad_c0, t_hx[1].grad)
    t_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert_close(f"grad {name}", p.grad, t_params[name].grad)


def test_charlm_options():
    model = CharLM(5, 4, 1, 3, peephole=True, clip=2.0, rng=0)
    assert model.lstm.peephole and model.lstm.clip == 2.0
    assert model.lstm_options == {"peephole": True, "clip": 2.0}
    for bad in [dict(bidirectional=True), dict(proj_size=2), dict(batch_first=True)]:
        with pytest.raises(TypeError, match=list(bad)[0]):
            CharLM(5, 4, 1, 3, **bad)
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        model(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="integer"):
        model(np.zeros((3, 2)))


def torch_trajectory(model, streams, seq_len, chunks, lr, clip):
    """The reference training loop, as torch's word_language_model writes it."""
    twin = twin_of(model)
    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    crit = torch.nn.CrossEntropyLoss()
    hidden, losses, norms = None, [], []
    for k in range(chunks):
        x, y = get_batch(streams, k, seq_len)
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden)         # repackage_hidden: cut the gradient
        opt.zero_grad()
        logits, hidden = twin(torch.from_numpy(np.ascontiguousarray(x)), hidden)
        loss = crit(logits.reshape(-1, model.vocab_size), torch.from_numpy(y.reshape(-1)))
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(twin.parameters(), clip)))
        opt.step()
        losses.append(loss.item())
    return losses, norms, dict(twin.named_parameters()), hidden


@pytest.mark.parametrize("num_layers, clip", [(1, 0.25), (2, 0.45)])
def test_training_trajectory_matches_torch(num_layers, clip):
    """Several chunks with the state carried and detached, Adam and clipping."""
    rng = np.random.default_rng(num_layers)
    V, H, E, B, T = 6, 5, 3, 3, 4
    streams = batchify(rng.integers(0, V, 3 * 18), B)          # (18, 3): 5 chunks, the last of 1 step
    chunks = num_chunks(streams, T)
    assert chunks == 5
    model = CharLM(V, H, num_layers, E, dtype=np.float64, rng=0)
    randomize(model, rng)
    lr = 0.05
    t_losses, t_norms, t_params, t_hidden = torch_trajectory(model, streams, T, chunks, lr, clip)
    assert min(t_norms) < clip < max(t_norms), t_norms         # clipping acts at some steps only

    opt = npylstm.Adam(model.parameters(), lr=lr)
    crit = npylstm.CrossEntropyLoss()
    state, losses = None, []
    for k in range(chunks):
        x, y = get_batch(streams, k, T)
        loss, state = train_step(model, opt, crit, x, y, state, clip)
        losses.append(loss)
    np.testing.assert_allclose(losses, t_losses, rtol=1e-10, atol=0)   # float64 round-off
    for name, p in model.named_parameters():
        assert_close(f"{name} after {chunks} steps", p.data, t_params[name], 1e-10)
    assert_close("carried h", state[0], t_hidden[0], 1e-10)
    assert_close("carried c", state[1], t_hidden[1], 1e-10)
