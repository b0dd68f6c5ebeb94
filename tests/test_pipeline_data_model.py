"""The sine pipeline's pieces: data windows, LSTMRegressor (with lengths) against torch, forecast."""
import numpy as np
import pytest
import torch

import npylstm

from helpers import assert_close, randomize
from npylstm.data import make_sequence_data, sine_wave, split_train_valid, time_major
from npylstm.model import LSTMRegressor, closed_loop_forecast, init_like_seed

pytestmark = pytest.mark.reference


# ----------------------------------------------------------------------------- data

def seed_make_sequence_data(y, num_sequence):
    """The seed notebook's loop, verbatim in substance."""
    seq_data, target_data = [], []
    for i in range(len(y) - num_sequence):
        seq_data.append(y[i:i + num_sequence])
        target_data.append(y[i + num_sequence:i + num_sequence + 1])
    return np.array(seq_data), np.array(target_data)


def test_sine_wave_is_the_seeds():
    x, y = sine_wave()
    assert x.shape == y.shape == (500,)
    np.testing.assert_array_equal(x, np.linspace(0, 499, 500))
    np.testing.assert_array_equal(y, np.sin(2 * x * np.pi / 50))


@pytest.mark.parametrize("n, seq_len", [(500, 40), (30, 1), (30, 29)])
def test_make_sequence_data_matches_the_seeds_loop(n, seq_len):
    _, y = sine_wave(n, 7)
    seq, target = make_sequence_data(y, seq_len)
    ref_seq, ref_target = seed_make_sequence_data(y, seq_len)
    assert seq.shape == (n - seq_len, seq_len) and target.shape == (n - seq_len, 1)
    np.testing.assert_array_equal(seq, ref_seq)
    np.testing.assert_array_equal(target, ref_target)


@pytest.mark.parametrize("seq_len", [0, 500, 501, 2.5, True])
def test_make_sequence_data_rejects_bad_seq_len(seq_len):
    with pytest.raises(ValueError, match="seq_len"):
        make_sequence_data(np.zeros(500), seq_len)


def test_split_and_time_major():
    _, y = sine_wave()
    seq, target = make_sequence_data(y, 40)
    (seq_train, target_train), (seq_valid, target_valid) = split_train_valid(seq, target, 10)
    assert seq_train.shape == (450, 40) and seq_valid.shape == (10, 40)
    np.testing.assert_array_equal(target_valid[:, 0], y[-10:])        # the last 10 points
    x = time_major(seq_valid)
    assert x.shape == (40, 10, 1) and x.flags.c_contiguous
    np.testing.assert_array_equal(x[:, 3, 0], seq_valid[3])
    with pytest.raises(ValueError, match="num_valid"):
        split_train_valid(seq, target, 460)


# ----------------------------------------------------------------------------- model vs torch

class SeedModel(torch.nn.Module):
    """The seed's LongShortTermMemory, with lengths read through a packed sequence."""

    def __init__(self, hidden_size, num_layers=1):
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size=1, hidden_size=hidden_size, num_layers=num_layers)
        self.linear = torch.nn.Linear(hidden_size, 1)

    def forward(self, x, lengths=None):
        if lengths is None:
            x, _ = self.lstm(x)
            return self.linear(x[-1])
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths),
                                                         enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
        return self.linear(out[torch.as_tensor(lengths) - 1, torch.arange(x.shape[1])])


def twin_of(model, num_layers=1):
    twin = SeedModel(model.lstm.hidden_size, num_layers).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return twin


def test_state_dict_keys_are_the_seeds():
    model = LSTMRegressor(1, 100, 1)
    names = list(SeedModel(100).state_dict())
    assert list(model.state_dict()) == names == [
        "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0",
        "linear.weight", "linear.bias"]
    for (name, p), ref in zip(model.named_parameters(), SeedModel(100).parameters()):
        assert p.shape == tuple(ref.shape), name


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_regressor_matches_torch(num_layers, with_lengths):
    rng = np.random.default_rng(num_layers)
    T, N, H = 7, 5, 6
    model = LSTMRegressor(1, H, 1, num_layers, dtype=np.float64, rng=0)
    randomize(model, rng)                      # distinct non-zero biases everywhere
    twin = twin_of(model, num_layers)
    x = rng.standard_normal((T, N, 1))
    lengths = np.array([3, 7, 1, 5, 7]) if with_lengths else None
    grad_pred = rng.standard_normal((N, 1))

    pred = model(x, lengths=lengths)
    grad_x = model.backward(grad_pred)
    tx = torch.tensor(x, requires_grad=True)
    t_pred = twin(tx, lengths)
    (t_pred * torch.from_numpy(grad_pred)).sum().backward()

    assert pred.shape == (N, 1)
    assert_close("pred", pred, t_pred)
    assert_close("grad x_seq", grad_x, tx.grad)
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert_close(f"grad {name}", p.grad, tparams[name].grad)
    if with_lengths:                           # nothing flows into the padding
        for b, n in enumerate(lengths):
            assert np.all(grad_x[n:, b] == 0), f"grad x_seq past length of sequence {b}"


def test_lengths_equal_to_T_is_the_last_step():
    rng = np.random.default_rng(3)
    model = LSTMRegressor(1, 4, 1, dtype=np.float64, rng=1)
    x = rng.standard_normal((6, 3, 1))
    np.testing.assert_array_equal(model(x), model(x, lengths=[6, 6, 6]))
    # a sequence read at step n equals the same sequence cut to n steps
    np.testing.assert_allclose(model(x, lengths=[2, 6, 4])[[0]], model(x[:2, :1]), rtol=1e-14)


def test_regressor_errors():
    model = LSTMRegressor(1, 4, 1)
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"x_seq of shape \(T, N, 1\)"):
        model(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="lengths"):
        model(np.zeros((5, 3, 1)), lengths=[1, 6, 2])
    model(np.zeros((5, 3, 1)))
    with pytest.raises(ValueError, match="grad_y"):
        model.backward(np.ones((2, 1)))


def test_init_like_seed():
    model = init_like_seed(LSTMRegressor(1, 100, 1, rng=0), np.random.default_rng(1))
    bound = np.sqrt(6 / (100 + 1))
    w = model.linear.weight.data
    assert np.all(model.linear.bias.data == 0)
    assert np.all(np.abs(w) <= bound) and np.abs(w).max() > 0.9 * bound     # uses the whole range
    for name, p in model.lstm.named_parameters():
        assert np.all(np.abs(p.data) <= 0.1), name                           # torch's 1/sqrt(H)
    again = init_like_seed(LSTMRegressor(1, 100, 1, rng=0), np.random.default_rng(1))
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_closed_loop_forecast_feeds_predictions_back():
    model = LSTMRegressor(1, 5, 1, dtype=np.float64, rng=2)
    window = np.sin(np.arange(8) / 3.0)
    forecast = closed_loop_forecast(model, window, 4)
    manual, w = [], list(window)
    for _ in range(4):
        manual.append(model(np.array(w[-8:])[:, None, None])[0, 0])
        w.append(manual[-1])
    np.testing.assert_array_equal(forecast, manual)
    assert closed_loop_forecast(model, window, 0).shape == (0,)
    assert model.training                      # left as it was


@pytest.mark.parametrize("options", [dict(peephole=True), dict(input_forget=True, clip=2.0),
                                     dict(ablate=("output_gate",)), dict(peephole=True, clip=1.5)])
def test_regressor_passes_the_lstm_options(options):
    model = LSTMRegressor(2, 5, 1, 2, dtype=np.float64, rng=0, **options)
    lstm = model.lstm
    assert lstm.peephole == options.get("peephole", False)
    assert lstm.input_forget == options.get("input_forget", False)
    assert lstm.clip == options.get("clip")
    assert lstm.ablate == options.get("ablate", ())
    # The same LSTM as one built alone from the same seed, and a Linear drawn as
    # without the options: variants from one seed share all but their extra weights.
    alone = npylstm.LSTM(2, 5, 2, dtype=np.float64, rng=0, **options)
    for name, value in alone.state_dict().items():
        np.testing.assert_array_equal(lstm.state_dict()[name], value, err_msg=name)
    plain = LSTMRegressor(2, 5, 1, 2, dtype=np.float64, rng=0)
    np.testing.assert_array_equal(model.linear.weight.data, plain.linear.weight.data)
    np.testing.assert_array_equal(model.linear.bias.data, plain.linear.bias.data)
    assert "weight_ci_l1" in dict(lstm.named_parameters()) or not options.get("peephole")


def test_regressor_refuses_other_keywords():
    with pytest.raises(TypeError, match=r"\['bidirectional'\].*peephole, input_forget, clip, "
                                        r"ablate"):
        LSTMRegressor(1, 4, 1, bidirectional=True)
    with pytest.raises(TypeError, match="dropout"):
        LSTMRegressor(1, 4, 1, dropout=0.5)


def test_regressor_carries_a_stream_through_hx_and_state():
    """Two chunks with the state carried give what one call over both gives."""
    rng = np.random.default_rng(5)
    model = LSTMRegressor(3, 4, 1, 2, dtype=np.float64, rng=1, peephole=True)
    x = rng.standard_normal((9, 2, 3))
    whole = model(x)
    h_n, c_n = model.state
    assert h_n.shape == c_n.shape == (2, 2, 4)
    model(x[:4])
    np.testing.assert_allclose(model(x[4:], hx=model.state), whole, rtol=1e-14)
    np.testing.assert_allclose(model.state[0], h_n, rtol=1e-14)
    np.testing.assert_allclose(model.state[1], c_n, rtol=1e-14)
    # the same through the LSTM itself
    _, (h_ref, c_ref) = model.lstm(x)
    np.testing.assert_array_equal(h_n, h_ref)
    np.testing.assert_array_equal(c_n, c_ref)
