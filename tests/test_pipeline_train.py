"""npylstm.train.train(): parity with the seed's torch loop, convergence, resuming, checkpoints."""
import dataclasses
import os

import numpy as np
import pytest
import torch

from helpers import assert_close
from npylstm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from npylstm.train import (ConfigError, TrainConfig, epoch_batches, make_data, make_model,
                           metrics_of, train)

pytestmark = pytest.mark.reference


@pytest.fixture(autouse=True)
def one_torch_thread():
    """On a small shared machine one thread is many times faster than several fighting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torch_seed_pipeline(cfg, init_state):
    """The seed notebook's training loop in float64 torch, from the given state_dict.

    Mini-batches and clipping, when the config asks, follow npylstm's batch order.
    Returns the per-epoch losses and the validation loss done right.
    """
    d = make_data(cfg)
    lstm = torch.nn.LSTM(1, cfg.hidden_size, cfg.num_layers).double()
    linear = torch.nn.Linear(cfg.hidden_size, 1).double()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in init_state.items()}
    lstm.load_state_dict({k[len("lstm."):]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[len("linear."):]: v for k, v in state.items() if k.startswith("linear.")})
    params = list(lstm.parameters()) + list(linear.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr, foreach=False)
    criterion = torch.nn.MSELoss()
    seq, target = torch.from_numpy(d.seq_train), torch.from_numpy(d.target_train)
    N = target.shape[0]
    losses = []
    for epoch in range(1, cfg.epochs + 1):
        total = 0.0
        for index in epoch_batches(N, cfg.batch_size, cfg.seed, epoch):
            index = torch.from_numpy(index)
            output = linear(lstm(seq[:, index])[0][-1])
            optimizer.zero_grad()
            loss = criterion(output, target[index])
            loss.backward()
            if cfg.clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip, foreach=False)
            optimizer.step()
            total += loss.item() * len(index)
        losses.append(total / N)
    with torch.no_grad():
        pred = linear(lstm(torch.from_numpy(d.seq_valid))[0][-1])
        valid_loss = criterion(pred, torch.from_numpy(d.target_valid)).item()
    return losses, valid_loss


@pytest.mark.parametrize("options", [
    dict(hidden_size=16),                                              # the seed's loop, 80 epochs
    dict(hidden_size=12, num_layers=2, batch_size=64, clip=0.5, epochs=10),
], ids=["seed-full-batch", "layers-minibatch-clip"])
def test_training_matches_torch(options):
    # H = 16 instead of 100 keeps this fast; the arithmetic is the same (measured at H = 100
    # too: relative differences of 1e-14 after 80 epochs).
    cfg = TrainConfig(dtype="float64", log_every=0, **options)
    init = make_model(cfg).state_dict()
    result = train(cfg, init_state=init)
    ref_losses, ref_valid = torch_seed_pipeline(cfg, init)
    assert len(result.losses) == cfg.epochs
    # measured: max relative difference 5e-16 (seed), 6e-16 (minibatch)
    assert_close("per-epoch training losses", result.losses, ref_losses, tol=1e-9)
    assert_close("validation loss", result.valid_loss, ref_valid, tol=1e-9)


def test_default_run_converges_like_the_seed():
    """The seed ended at a training loss of 2e-4. Measured over seeds 0..7 (float32):
    final training loss 7e-5 .. 2e-4, validation loss 3e-5 .. 3e-4; the first is 0.5."""
    for seed in (0, 1):
        result = train(TrainConfig(seed=seed, log_every=0))
        assert result.losses[0] > 0.3, f"seed {seed}: first loss {result.losses[0]}"
        assert result.losses[-1] < 1e-3, f"seed {seed}: final training loss {result.losses[-1]}"
        assert result.valid_loss < 3e-3, f"seed {seed}: validation loss {result.valid_loss}"


def test_valid_loss_is_the_mse_of_predictions_against_targets():
    cfg = TrainConfig(hidden_size=8, epochs=3, log_every=0, forecast=5, dtype="float64")
    result = train(cfg)
    d = make_data(cfg)
    assert result.predictions.shape == result.valid_targets.shape == (10, 1)
    np.testing.assert_array_equal(result.valid_targets, d.target_valid)
    np.testing.assert_allclose(result.predictions, result.model(d.seq_valid), rtol=1e-14)
    expected = np.mean((result.predictions - d.target_valid) ** 2)
    assert result.valid_loss == pytest.approx(expected, rel=1e-12)
    # forecast: 5 steps past x = 499 against the true sine
    assert result.forecast.shape == result.forecast_targets.shape == (5,)
    np.testing.assert_allclose(result.forecast_targets, np.sin(2 * np.pi * np.arange(500, 505) / 50))
    metrics = metrics_of(result)
    assert metrics["forecast"]["mse"] == pytest.approx(
        np.mean((result.forecast - result.forecast_targets) ** 2))


def test_train_prints_the_seeds_progress_lines(capsys):
    train(TrainConfig(hidden_size=4, epochs=12, log_every=5))
    lines = capsys.readouterr().out.splitlines()
    assert [line[:15] for line in lines] == ["[Epoch   1/ 12]", "[Epoch   6/ 12]", "[Epoch  11/ 12]"]
    assert lines[0].startswith("[Epoch   1/ 12] loss: 0.")
    train(TrainConfig(hidden_size=4, epochs=2, log_every=0))
    assert capsys.readouterr().out == ""


def test_epoch_batches():
    full = epoch_batches(450, None, 0, 1)
    assert len(full) == 1 and np.array_equal(full[0], np.arange(450))
    batches = epoch_batches(450, 100, 3, 7)
    assert [len(b) for b in batches] == [100, 100, 100, 100, 50]
    assert sorted(np.concatenate(batches).tolist()) == list(range(450))
    again = epoch_batches(450, 100, 3, 7)
    assert len(again) == len(batches)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))       # from (seed, epoch) only
    other = np.concatenate(epoch_batches(450, 100, 3, 8))
    assert not np.array_equal(np.concatenate(batches), other)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resume_continues_exactly(tmp_path, dtype):
    cfg = TrainConfig(hidden_size=6, epochs=10, batch_size=100, clip=1.0, log_every=0, dtype=dtype)
    straight = train(cfg)
    first = train(dataclasses.replace(cfg, epochs=5))
    path = tmp_path / "model.npz"
    save_checkpoint(path, first.model, first.optimizer, 5, first.losses, dataclasses.asdict(cfg))
    resumed = train(cfg, resume=path)
    assert resumed.losses[:5] == first.losses
    np.testing.assert_array_equal(resumed.losses, straight.losses)
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value, err_msg=name)
    assert resumed.valid_loss == straight.valid_loss


def test_checkpoint_round_trip(tmp_path):
    result = train(TrainConfig(hidden_size=5, epochs=3, log_every=0))
    path = tmp_path / "model.npz"
    save_checkpoint(path, result.model, result.optimizer, 3, result.losses, {"seed": 0})
    with np.load(path, allow_pickle=False) as f:                # no pickled objects inside
        assert str(f["format"]) == "npylstm-checkpoint"
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["losses"] == result.losses and loaded["config"] == {"seed": 0}
    for name, value in result.model.state_dict().items():
        np.testing.assert_array_equal(loaded["model"][name], value, err_msg=name)
    mine, saved = result.optimizer.state_dict(), loaded["optimizer"]
    assert saved["param_groups"][0] == {**mine["param_groups"][0], "betas": [0.9, 0.999]}
    for i, state in mine["state"].items():
        assert saved["state"][i]["step"] == state["step"] == 3.0
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(saved["state"][i][key], state[key], err_msg=f"{i} {key}")
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]             # no temporary file left


def test_resume_refuses_a_checkpoint_that_does_not_fit(tmp_path):
    cfg = TrainConfig(hidden_size=5, epochs=3, log_every=0)
    result = train(cfg)
    path = tmp_path / "model.npz"
    save_checkpoint(path, result.model, result.optimizer, 3, result.losses, dataclasses.asdict(cfg))
    with pytest.raises(CheckpointError, match=r"model\.npz.*hidden_size=5.*hidden_size=7"):
        train(dataclasses.replace(cfg, hidden_size=7), resume=path)
    with pytest.raises(CheckpointError, match="already at epoch 3"):
        train(dataclasses.replace(cfg, epochs=2), resume=path)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match=r"junk\.npz.*not a readable"):
        train(cfg, resume=tmp_path / "junk.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    for name, change, problem in [
            ("v2.npz", {"format_version": np.array(2)}, "format version 2"),
            ("nolosses.npz", {"losses": None}, "'losses' is missing"),
            ("badjson.npz", {"config": np.array("{oops")}, "malformed"),
            ("shape.npz", {"model/linear.weight": np.ones((1, 3))}, "does not fit the model"),
            ("nomodel.npz", {"model/linear.bias": None}, "does not fit the model")]:
        broken = {k: v for k, v in {**arrays, **change}.items() if v is not None}
        np.savez(tmp_path / name, **broken)
        with pytest.raises(CheckpointError, match=f"{name}.*{problem}"):
            train(cfg, resume=tmp_path / name)
    with pytest.raises(ValueError, match="not both"):
        train(cfg, init_state=result.model.state_dict(), resume=path)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "positive integer"),
    ("hidden_size", -3, "positive integer"),
    ("num_layers", 0, "positive integer"),
    ("lr", 0.0, "> 0"),
    ("lr", float("nan"), "> 0"),
    ("batch_size", 0, "positive integer"),
    ("clip", -1.0, "> 0"),
    ("period", 0, "> 0"),
    ("seq_len", 490, "more windows than the 10 validation ones"),
    ("num_valid", 0, "positive integer"),
    ("dtype", "float16", "float32"),
    ("seed", -1, "integer >= 0"),
])
def test_config_validation(field, value, message):
    cfg = dataclasses.replace(TrainConfig(), **{field: value})
    with pytest.raises(ConfigError, match=message) as err:
        train(cfg)
    assert err.value.field == field
    TrainConfig(seq_len=489).validate()         # 11 windows: 1 to train on, 10 to validate
