"""The seed's experiment: learn a sine wave with LSTM(1, 100) + Linear and Adam.

    python -m npylstm.train                       # the seed: 80 epochs, writes runs/sine/
    python -m npylstm.train --forecast 100        # also forecast 100 steps past the data
    python -m npylstm.train --help

``train(config)`` does the work and writes no files; ``main()`` parses the
command line, calls it and writes metrics.json, loss.png, prediction.png and
the checkpoint model.npz into --out.

Shapes: T = seq_len steps, N windows.
"""
import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from . import data as sine
from .argtypes import (DTYPES, ConfigError, at_least, check_integer, check_positive, fail,
                       positive_float)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .files import cannot_write, make_folder, write_json
from .clip import clip_grad_norm_
from .loss import MSELoss
from .model import LSTMRegressor, closed_loop_forecast, init_like_seed
from .module import no_grad
from .optim import Adam


@dataclass
class TrainConfig:
    """Settings of a run; the defaults are the seed's."""
    num_points: int = 500          # length of the sine wave
    period: float = 50             # in points
    seq_len: int = 40              # L, steps per window
    num_valid: int = 10            # last windows held out for validation
    hidden_size: int = 100
    num_layers: int = 1
    lr: float = 0.001              # Adam
    epochs: int = 80
    batch_size: Optional[int] = None   # None: full batch, as the seed; else shuffled mini-batches
    clip: Optional[float] = None       # max total gradient norm; None: no clipping
    seed: int = 0                  # initialisation and mini-batch order
    dtype: str = "float32"
    forecast: int = 0              # closed-loop steps past the end of the data; 0: none
    log_every: int = 10            # print the loss every this many epochs; 0: silent

    def validate(self):
        """Raise ConfigError (naming the field) for the first setting that cannot run."""
        for name in ("num_points", "seq_len", "num_valid", "hidden_size", "num_layers", "epochs"):
            check_integer(self, name, 1)
        for name in ("seed", "forecast", "log_every"):
            check_integer(self, name, 0)
        check_positive(self, "period")
        check_positive(self, "lr")
        if self.batch_size is not None:
            check_integer(self, "batch_size", 1)
        if self.clip is not None:
            check_positive(self, "clip")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError("dtype", f"must be 'float32' or 'float64', got {self.dtype!r}")
        windows = self.num_points - self.seq_len
        if windows <= self.num_valid:
            raise ConfigError("seq_len", (
                f"must leave more windows than the {self.num_valid} validation ones: "
                f"{self.num_points} points give {max(windows, 0)} windows of {self.seq_len}, "
                f"so seq_len must be < {self.num_points - self.num_valid}"))
        return self


# Settings that must be the same to resume a run exactly; the others
# (epochs, forecast, log_every) may change between the two halves.
RESUME_FIELDS = ("num_points", "period", "seq_len", "num_valid", "hidden_size", "num_layers",
                 "lr", "batch_size", "clip", "seed", "dtype")


@dataclass
class TrainResult:
    """What ``train`` returns."""
    config: TrainConfig
    model: LSTMRegressor
    optimizer: Adam
    losses: List[float]            # training loss of every epoch, from the first
    valid_loss: float              # MSE of the predictions on the held-out windows
    predictions: np.ndarray        # (num_valid, 1) one-step predictions on the held-out windows
    valid_targets: np.ndarray      # (num_valid, 1)
    train_seconds: float           # time of this call's epochs
    forecast: Optional[np.ndarray] = None          # (forecast,) closed-loop predictions
    forecast_targets: Optional[np.ndarray] = None  # (forecast,) the true continuation
    forecast_loss: Optional[float] = None          # MSE of forecast against forecast_targets


@dataclass
class SineData:
    """The windows of one run, time-major and in the run's dtype."""
    x: np.ndarray             # (n,) positions
    y: np.ndarray             # (n,) the wave
    seq_train: np.ndarray     # (T, N_train, 1)
    target_train: np.ndarray  # (N_train, 1)
    seq_valid: np.ndarray     # (T, N_valid, 1)
    target_valid: np.ndarray  # (N_valid, 1)


def make_data(cfg):
    """The seed's data for this config: windows, targets and the train/valid split."""
    dtype = np.dtype(cfg.dtype)
    x, y = sine.sine_wave(cfg.num_points, cfg.period)
    seq, target = sine.make_sequence_data(y, cfg.seq_len)
    (seq_train, target_train), (seq_valid, target_valid) = sine.split_train_valid(
        seq, target, cfg.num_valid)
    return SineData(x, y, sine.time_major(seq_train).astype(dtype), target_train.astype(dtype),
                    sine.time_major(seq_valid).astype(dtype), target_valid.astype(dtype))


def make_model(cfg):
    """LSTMRegressor initialised as the seed: torch's LSTM default, Xavier linear.weight, zero bias.

    One generator from ``cfg.seed`` draws the LSTM, then the Xavier weight.
    """
    rng = np.random.default_rng(cfg.seed)
    model = LSTMRegressor(1, cfg.hidden_size, 1, cfg.num_layers, dtype=np.dtype(cfg.dtype), rng=rng)
    return init_like_seed(model, rng)


def epoch_batches(num_windows, batch_size, seed, epoch):
    """Index arrays of the mini-batches of one epoch (1-based).

    Full batch, in order, when batch_size is None. Otherwise a permutation drawn
    from (seed, epoch) alone, so a resumed run needs no saved random state.
    """
    if batch_size is None or batch_size >= num_windows:
        return [np.arange(num_windows)]
    order = np.random.default_rng([seed, epoch]).permutation(num_windows)
    return [order[i:i + batch_size] for i in range(0, num_windows, batch_size)]


def train_epoch(model, optimizer, criterion, seq, target, cfg, epoch):
    """One pass over the training windows; returns the mean loss over them.

    seq: (T, N, 1), target: (N, 1). One Adam step per batch, as the seed:
    forward, zero_grad, loss, backward, (clip), step.
    """
    model.train()
    N = target.shape[0]
    total = 0.0
    for index in epoch_batches(N, cfg.batch_size, cfg.seed, epoch):
        full = len(index) == N
        pred = model(seq if full else seq[:, index])               # (n, 1)
        optimizer.zero_grad()
        loss = criterion(pred, target if full else target[index])
        model.backward(criterion.backward())
        if cfg.clip is not None:
            clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        total += float(loss) * len(index)
    return total / N


def _check_resumable(path, checkpoint, cfg):
    saved = checkpoint["config"]
    for name in RESUME_FIELDS:
        if name not in saved:
            raise CheckpointError(path, f"its config has no {name!r}")
        if saved[name] != getattr(cfg, name):
            raise CheckpointError(path, f"was trained with {name}={saved[name]!r}, but this run "
                                        f"has {name}={getattr(cfg, name)!r}")
    if checkpoint["epoch"] > cfg.epochs:
        raise CheckpointError(path, f"is already at epoch {checkpoint['epoch']}, past "
                                    f"epochs={cfg.epochs}")


def train(cfg=None, *, init_state=None, resume=None):
    """Train the seed's model on the seed's data.

    Inputs:
    - cfg: TrainConfig (default: the seed's)
    - init_state: a state_dict (lstm.*, linear.*) to start from instead of the
      seeded initialisation
    - resume: path of a checkpoint of an earlier run with the same settings;
      training continues from its epoch up to cfg.epochs

    Returns a TrainResult. Raises ConfigError for a bad config and
    CheckpointError for a checkpoint that cannot be resumed. Writes no files.
    """
    cfg = (cfg or TrainConfig()).validate()
    if init_state is not None and resume is not None:
        raise ValueError("train: give init_state or resume, not both")
    d = make_data(cfg)
    model = make_model(cfg)
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    criterion = MSELoss()
    losses = []
    if init_state is not None:
        model.load_state_dict(init_state)
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        _check_resumable(resume, checkpoint, cfg)
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, TypeError) as err:
            raise CheckpointError(resume, f"does not fit the model: {err}")
        losses = list(checkpoint["losses"])

    start = time.perf_counter()
    for epoch in range(len(losses) + 1, cfg.epochs + 1):
        loss = train_epoch(model, optimizer, criterion, d.seq_train, d.target_train, cfg, epoch)
        losses.append(loss)
        if cfg.log_every and (epoch - 1) % cfg.log_every == 0:
            print(f"[Epoch {epoch:3d}/{cfg.epochs:3d}] loss: {loss:.5f}", flush=True)
    seconds = time.perf_counter() - start

    # Validation done right: the model's predictions against the targets.
    model.eval()
    with no_grad():                                                # inference: no BPTT cache
        predictions = model(d.seq_valid)                           # (N_valid, 1)
        valid_loss = float(criterion(predictions, d.target_valid))
    result = TrainResult(cfg, model, optimizer, losses, valid_loss, predictions,
                         d.target_valid, seconds)
    if cfg.forecast:
        n = cfg.num_points
        result.forecast = closed_loop_forecast(model, d.y[n - cfg.seq_len:], cfg.forecast)
        _, truth = sine.sine_wave(n + cfg.forecast, cfg.period)
        result.forecast_targets = truth[n:]
        result.forecast_loss = float(np.mean((result.forecast - result.forecast_targets) ** 2))
    return result


# ----------------------------------------------------------------------------- command line

PROG = "python -m npylstm.train"


def build_parser():
    """The argparse parser of ``python -m npylstm.train``; its defaults are TrainConfig's."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train LSTM + Linear on a sine wave (the seed notebook's experiment) and "
                    "write metrics.json, loss.png, prediction.png and model.npz into --out.")
    data = p.add_argument_group("data")
    data.add_argument("--num-points", type=at_least(1), default=d.num_points, metavar="N",
                      help="points of the sine wave (default %(default)s)")
    data.add_argument("--period", type=positive_float, default=d.period,
                      help="period of the sine wave, in points (default %(default)s)")
    data.add_argument("--seq-len", type=at_least(1), default=d.seq_len, metavar="L",
                      help="steps per input window (default %(default)s)")
    data.add_argument("--num-valid", type=at_least(1), default=d.num_valid, metavar="V",
                      help="last windows held out for validation (default %(default)s)")
    model = p.add_argument_group("model and training")
    model.add_argument("--hidden-size", type=at_least(1), default=d.hidden_size, metavar="H",
                       help="default %(default)s")
    model.add_argument("--num-layers", type=at_least(1), default=d.num_layers, metavar="K",
                       help="stacked LSTM layers (default %(default)s)")
    model.add_argument("--epochs", type=at_least(1), default=d.epochs, metavar="E",
                       help="total epochs, counting those of a resumed run (default %(default)s)")
    model.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate (default %(default)s)")
    model.add_argument("--batch-size", type=at_least(1), default=d.batch_size, metavar="B",
                       help="shuffled mini-batches of B windows (default: full batch)")
    model.add_argument("--clip", type=positive_float, default=d.clip, metavar="MAX_NORM",
                       help="clip the total gradient norm to MAX_NORM (default: no clipping)")
    model.add_argument("--seed", type=at_least(0), default=d.seed, help="initialisation and batch order "
                                                                "(default %(default)s)")
    model.add_argument("--dtype", default=d.dtype, choices=DTYPES,
                       help="default %(default)s")
    out = p.add_argument_group("output")
    out.add_argument("--forecast", type=at_least(0), default=d.forecast, metavar="K",
                     help="also forecast K steps past the data, feeding predictions back in")
    out.add_argument("--out", default=os.path.join("runs", "sine"), metavar="DIR",
                     help="output folder (default %(default)s)")
    out.add_argument("--resume", metavar="CHECKPOINT",
                     help="continue the run saved in CHECKPOINT (a model.npz) up to --epochs; "
                          "settings not given default to the checkpoint's")
    out.add_argument("--no-plots", action="store_true", help="skip loss.png and prediction.png")
    out.add_argument("--plot-gates", action="store_true",
                     help="also draw the gates of layer 0 over the last validation window "
                          "into gates.png")
    out.add_argument("--log-every", type=at_least(0), default=d.log_every, metavar="E",
                     help="print the loss every E epochs (default %(default)s)")
    out.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def _config_from_args(args):
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    if args.quiet:
        cfg.log_every = 0
    return cfg


def metrics_of(result):
    """The contents of metrics.json."""
    cfg = result.config
    metrics = {
        "config": dataclasses.asdict(cfg),
        "epochs": len(result.losses),
        "losses": result.losses,
        "final_loss": result.losses[-1],
        "valid_loss": result.valid_loss,
        "train_seconds": result.train_seconds,
        "valid_predictions": result.predictions[:, 0].tolist(),
        "valid_targets": result.valid_targets[:, 0].tolist(),
        "forecast": None,
    }
    if result.forecast is not None:
        error = result.forecast - result.forecast_targets
        metrics["forecast"] = {
            "steps": len(result.forecast),
            "mse": result.forecast_loss,
            "max_abs_error": float(np.max(np.abs(error))),
            "predictions": result.forecast.tolist(),
            "targets": result.forecast_targets.tolist(),
        }
    return metrics


def write_outputs(result, out, plots=True, gates=False):
    """metrics.json, model.npz, (with ``plots``) loss.png and prediction.png, and
    (with ``gates``) gates.png into ``out``; returns the names written."""
    cfg = result.config
    metrics = metrics_of(result)
    write_json(os.path.join(out, "metrics.json"), metrics)
    save_checkpoint(os.path.join(out, "model.npz"), result.model, result.optimizer,
                    len(result.losses), result.losses, dataclasses.asdict(cfg))
    written = ["metrics.json", "model.npz"]
    if gates:
        from .gates import plot_gates
        window = make_data(cfg).seq_valid[:, -1:]                 # (T, 1, 1), the last valid window
        plot_gates(result.model.lstm, window, os.path.join(out, "gates.png"))
        written.append("gates.png")
    if not plots:
        return written
    from . import plots as figures
    figures.plot_loss(os.path.join(out, "loss.png"), result.losses, result.valid_loss)
    x, y = sine.sine_wave(cfg.num_points, cfg.period)
    forecast_x = None if result.forecast is None else cfg.num_points + np.arange(cfg.forecast)
    figures.plot_prediction(os.path.join(out, "prediction.png"), x, y, x[-cfg.num_valid:],
                            result.predictions[:, 0], forecast_x, result.forecast,
                            result.forecast_targets)
    return written + ["loss.png", "prediction.png"]


def main(argv=None):
    """The command line; returns the exit status (argument errors exit 2 through argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        # Settings not given on the command line default to the checkpoint's,
        # so `--resume DIR/model.npz --epochs 20` is enough to continue a run.
        try:
            saved = load_checkpoint(args.resume)["config"]
        except CheckpointError as err:
            return fail(PROG, str(err))
        parser.set_defaults(**{k: v for k, v in saved.items() if k in RESUME_FIELDS})
        args = parser.parse_args(argv)
    cfg = _config_from_args(args)
    try:
        cfg.validate()
    except ConfigError as err:
        parser.error(err.argument_message())

    try:
        make_folder(args.out)
    except OSError as err:
        return cannot_write(PROG, err)
    try:
        result = train(cfg, resume=args.resume)
    except CheckpointError as err:
        return fail(PROG, str(err))
    try:
        written = write_outputs(result, args.out, plots=not args.no_plots, gates=args.plot_gates)
    except OSError as err:
        return cannot_write(PROG, err)

    if not args.quiet:
        print("Finished Training")
        print(f"final loss: {result.losses[-1]:.6g}")
        print(f"valid loss: {result.valid_loss:.6g}  (MSE of the predictions on the "
              f"{cfg.num_valid} held-out windows)")
        if result.forecast is not None:
            print(f"forecast loss: {result.forecast_loss:.6g}  (MSE of {cfg.forecast} "
                  f"closed-loop steps past the data)")
        print(f"training time: {result.train_seconds:.3f} s")
        print(f"wrote {', '.join(os.path.join(args.out, name) for name in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
