"""Train the character model: ``python -m npylstm.charlm train``.

    python -m npylstm.charlm train                     # the stdlib's source, writes runs/charlm/
    python -m npylstm.charlm train --text input.txt    # any UTF-8 text
    python -m npylstm.charlm train --resume runs/charlm/model.npz --steps 6000

``train_charlm(config)`` does the work and writes no files; ``write_outputs``
writes model.npz, metrics.json, loss.png and samples.txt; ``add_parser`` and
``run`` are the ``train`` subcommand of ``python -m npylstm.charlm``.
docs/charlm.md explains the model, the training and what it reaches.

Shapes: T = seq_len, B streams (batch_size), L layers, H hidden size, V vocabulary size.
"""
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from .. import text as texts
from ..argtypes import (DTYPES, ConfigError, at_least, check_integer, check_positive, fail,
                        positive_float, probability)
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..files import cannot_write, make_folder, write_json, write_text
from ..loss import CrossEntropyLoss
from ..optim import Adam
from .model import CharLM
from .sampling import sample
from .step import bits_per_char, evaluate, get_batch, num_chunks, train_step

PROG = "python -m npylstm.charlm"
TRAIN_PROG = PROG + " train"


@dataclass
class CharLMConfig:
    """Settings of a character-model run; the defaults are the command line's.

    Where the defaults come from (docs/charlm.md has the runs behind them):
    - hidden_size 256, num_layers 1, embedding_dim 64: the reference point of issue 16
      (a plain NumPy char-LSTM, 1 layer of 256) and torch-rnn's 64-dim embeddings. In a
      fixed time a single layer of 256 sees 2-3 times more text than 2 layers of 256 or
      1 of 384-512 (measured: 23k, 10.5k, 12k and 8k characters per CPU-second), and a
      1 x 384 run given the same CPU time as a 1 x 256 one ended at 2.56 bpc against 2.27.
    - batch_size 64, lr 4e-3: at the same 2.5 M characters, batch 64 with Adam 4e-3 ended
      at 2.27 bits per character against 2.31 for batch 32 with 2e-3 (char-rnn's and
      torch-rnn's rate), and costs 15 % less time per character (bigger GEMMs).
    - seq_len 64: char-rnn's 50 and the reference's 64; the state is carried across chunks,
      so the context is not limited to T, only how far back the gradient reaches.
    - lr_half_life 900: exponential decay, as char-rnn's learning_rate_decay; the default
      run ends at about 1/22 of lr. It depends on the step alone, so a resumed run is exact (a
      cosine to the end of --steps would change with --steps).
    - clip 5: char-rnn's (here the total norm, clip_grad_norm_).
    - steps 4000 (4000 x 64 x 64 = 16.4 M characters, 1.42 passes over the training part
      of the stdlib): 7 min 37 s in all on 2 quiet cores of an Intel Xeon (37k characters
      per second, 7 min 22 s of it training), 1.792 bits per character on the whole held-out
      part; 3000 steps gave 1.815 and 2700 gave 1.823.
    """
    text: Optional[str] = None     # a UTF-8 file, used as it is; None: npylstm.text.python_corpus()
    hidden_size: int = 256         # H
    num_layers: int = 1            # L
    embedding_dim: int = 64        # E
    seq_len: int = 64              # T, steps per chunk: how far the gradient reaches back
    batch_size: int = 64           # B contiguous streams
    steps: int = 4000              # Adam steps (chunks), counting those of a resumed run
    lr: float = 4e-3               # Adam's learning rate at step 1
    lr_half_life: int = 900        # steps in which the learning rate halves; 0: constant
    clip: Optional[float] = 5.0    # max total gradient norm; None: no clipping
    dropout: float = 0.0           # between stacked LSTM layers
    seed: int = 0                  # initialisation (and dropout masks)
    dtype: str = "float32"
    log_every: int = 50            # train_loss: the mean over every log_every steps
    eval_every: int = 250          # valid_bpc on the fixed held-out slice every this many steps
    eval_chars: int = 50_000       # the fixed slice: the first eval_chars of the held-out part
    sample_chars: int = 300        # a sample of this many characters at every evaluation; 0: none

    def validate(self):
        """Raise ConfigError (naming the field) for the first setting that cannot run."""
        for name in ("hidden_size", "num_layers", "embedding_dim", "seq_len", "batch_size",
                     "steps", "log_every", "eval_every", "eval_chars"):
            check_integer(self, name, 1)
        for name in ("lr_half_life", "seed", "sample_chars"):
            check_integer(self, name, 0)
        check_positive(self, "lr")
        if self.clip is not None:
            check_positive(self, "clip")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise ConfigError("dropout", f"must be a number in [0, 1), got {self.dropout!r}")
        if self.dtype not in DTYPES:
            raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.text is not None and not isinstance(self.text, str):
            raise ConfigError("text", f"must be a file name or None, got {self.text!r}")
        return self


class TextError(ValueError):
    """A --text file that is missing, unreadable or not UTF-8; the message names it."""


# Settings that must be the same to resume a run exactly (the corpus too, by
# its SHA-256). The others (steps, and what is logged, evaluated and sampled)
# may change between the two halves.
RESUME_FIELDS = ("hidden_size", "num_layers", "embedding_dim", "seq_len", "batch_size", "lr",
                 "lr_half_life", "clip", "dropout", "seed", "dtype")
SAMPLE_TEMPERATURE = 1.0      # of the samples along training: the model's own distribution


@dataclass
class Progress:
    """What ``train_charlm`` tells its ``progress`` callback at every logged step."""
    step: int
    steps: int
    loss: float                   # mean nats per character over the last log_every steps
    valid_bpc: Optional[float]    # the latest evaluation on the held-out slice, if any yet
    chars_per_second: float       # training characters per second of training time
    seconds_left: float           # estimate for the remaining steps (evaluations included)


@dataclass
class CharLMResult:
    """What ``train_charlm`` returns."""
    config: CharLMConfig
    model: CharLM
    optimizer: Adam
    vocab: texts.Vocabulary
    corpus: dict                  # corpus_info: name, chars, sha256, vocab_size
    split: dict                   # train_chars, valid_chars, eval_slice_chars, valid_scored_chars
    losses: List[float]           # nats per character of every step, from the first
    valid: List[dict]             # [{"step", "bpc"}] on the fixed held-out slice
    samples: List[dict]           # [{"step", "valid_bpc", "text"}] along training
    final_valid_bpc: float        # on the whole held-out part
    chars: int                    # training characters processed (targets), all steps
    train_seconds: float          # time in training steps, all sessions (evaluations excluded)
    state: tuple = field(repr=False, default=None)   # (h, c) (L, B, H) carried into the next step
    rng_states: list = field(repr=False, default_factory=list)

    @property
    def steps(self):
        return len(self.losses)

    @property
    def chars_per_second(self):
        return self.chars / self.train_seconds if self.train_seconds > 0 else float("nan")


# ----------------------------------------------------------------------------- data

def load_text(config):
    """(name, text) of the run's corpus: the --text file as it is, or python_corpus().

    Raises TextError naming a --text file that is missing, unreadable or not UTF-8,
    and python_corpus's FileNotFoundError when the stdlib has no sources.
    """
    if config.text is None:
        return "python-stdlib", texts.python_corpus()
    path = config.text
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise TextError(f"cannot read {path!r}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TextError(f"{path!r} is not UTF-8 text (byte {err.start}: "
                        f"{data[err.start:err.start + 1]!r})") from None
    return os.path.basename(path), text


@dataclass
class CharData:
    """The encoded corpus, split and laid out for one run."""
    vocab: texts.Vocabulary
    corpus: dict
    streams: np.ndarray           # (L_train, B) training streams
    eval_streams: np.ndarray      # (L_slice, B) the fixed held-out slice
    valid_streams: np.ndarray     # (L_valid, B) the whole held-out part
    split: dict


def make_data(config, name, text):
    """Vocabulary (of the whole text), the train/held-out split and the streams.

    Raises ConfigError when the text is too short for batch_size streams.
    """
    if len(text) < 2:
        raise ConfigError("text", f"{name!r} has {len(text)} character(s); at least 2 are needed")
    vocab = texts.Vocabulary.from_text(text)
    ids = vocab.encode(text)
    try:
        train_ids, valid_ids = texts.split_train_valid(ids)
    except ValueError as err:
        raise ConfigError("text", f"{name!r} is too short: {err}") from None
    B = config.batch_size
    for part, part_ids in (("training part", train_ids), ("held-out part", valid_ids)):
        if len(part_ids) < 2 * B:          # every stream needs an input and a target
            raise ConfigError("batch_size", (
                f"{B} is too many streams for the {part} of {name!r} ({len(part_ids)} "
                f"characters); it needs at least 2 per stream"))
    slice_ids = valid_ids[:max(config.eval_chars, 2 * B)]
    return CharData(vocab, texts.corpus_info(name, text), texts.batchify(train_ids, B),
                    texts.batchify(slice_ids, B), texts.batchify(valid_ids, B),
                    dict(train_chars=len(train_ids), valid_chars=len(valid_ids),
                         eval_slice_chars=len(slice_ids) // B * B,
                         # what evaluate scores: every stream's characters but its first
                         valid_scored_chars=(len(valid_ids) // B - 1) * B))


def learning_rate(config, step):
    """Adam's learning rate at step (1-based): lr halved every lr_half_life steps.

    A function of the step alone, so S steps then a resumed run to 2 S use the
    same rates as 2 S steps straight."""
    if config.lr_half_life == 0:
        return config.lr
    return config.lr * 0.5 ** ((step - 1) / config.lr_half_life)


def make_model(config, vocab_size):
    """The CharLM of a config, initialised from config.seed."""
    return CharLM(vocab_size, config.hidden_size, config.num_layers, config.embedding_dim,
                  config.dropout, dtype=np.dtype(config.dtype), rng=config.seed)


def _generators(model):
    """The random generators inside a model (the LSTM's draws the dropout masks)."""
    return [m._rng for m in model.modules() if isinstance(getattr(m, "_rng", None), np.random.Generator)]


# ----------------------------------------------------------------------------- training

def train_charlm(config=None, *, resume=None, progress=None):
    """Train the character model with truncated BPTT over B carried streams.

    Inputs:
    - config: CharLMConfig (default: the command line's defaults)
    - resume: path of a model.npz of an earlier run with the same settings and
      corpus; training continues from its step up to config.steps, exactly as
      if it had not stopped
    - progress: None or a callable taking a Progress, at every logged step

    Returns a CharLMResult. Raises ConfigError for a bad config (or one that does
    not fit the text), TextError for a bad --text file, FileNotFoundError without
    stdlib sources, CheckpointError for a checkpoint that cannot be resumed.
    Writes no files.
    """
    cfg = (config or CharLMConfig()).validate()
    name, text = load_text(cfg)
    d = make_data(cfg, name, text)
    del text
    model = make_model(cfg, len(d.vocab))
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    criterion = CrossEntropyLoss()
    result = CharLMResult(cfg, model, optimizer, d.vocab, d.corpus, d.split, losses=[], valid=[],
                          samples=[], final_valid_bpc=float("nan"), chars=0, train_seconds=0.0)
    if resume is not None:
        _restore(resume, result)

    chunks = num_chunks(d.streams, cfg.seq_len)
    state = result.state
    session_steps, session_start, window = 0, time.perf_counter(), []
    for step in range(result.steps + 1, cfg.steps + 1):
        k = (step - 1) % chunks
        if k == 0:
            state = None            # a new pass over the text: every stream starts again from zeros
        inputs, targets = get_batch(d.streams, k, cfg.seq_len)          # (T, B) each
        optimizer.param_groups[0]["lr"] = learning_rate(cfg, step)
        started = time.perf_counter()
        # The state is carried in from the previous chunk and out to the next one;
        # train_step cuts the gradient at the chunk's start (docs/charlm.md).
        loss, state = train_step(model, optimizer, criterion, inputs, targets, state, cfg.clip)
        result.train_seconds += time.perf_counter() - started
        result.chars += targets.size
        result.losses.append(loss)
        window.append(loss)
        session_steps += 1

        if step % cfg.eval_every == 0 or step == cfg.steps:
            bpc = bits_per_char(evaluate(model, d.eval_streams, EVAL_SEQ_LEN))
            result.valid.append({"step": step, "bpc": bpc})
            if cfg.sample_chars:
                result.samples.append({"step": step, "valid_bpc": bpc, "text": sample(
                    model, d.vocab, cfg.sample_chars, temperature=SAMPLE_TEMPERATURE,
                    seed=cfg.seed)})
        if step % cfg.log_every == 0 or step == cfg.steps:
            if progress is not None:
                elapsed = time.perf_counter() - session_start
                progress(Progress(step, cfg.steps, float(np.mean(window)),
                                  result.valid[-1]["bpc"] if result.valid else None,
                                  result.chars_per_second,
                                  elapsed / session_steps * (cfg.steps - step)))
            window = []
    result.state = state
    result.rng_states = [g.bit_generator.state for g in _generators(model)]
    # The figure to quote: the whole held-out part, every stream's state carried.
    result.final_valid_bpc = bits_per_char(evaluate(model, d.valid_streams, EVAL_SEQ_LEN))
    return result


EVAL_SEQ_LEN = 256     # evaluation chunks: no gradient, so longer chunks are just fewer calls


def train_loss_log(losses, log_every):
    """metrics.json's train_loss: [{"step", "loss"}], the mean over every log_every steps
    (and the steps after the last whole window), in nats per character."""
    log = []
    for end in list(range(log_every, len(losses) + 1, log_every)) + \
            ([len(losses)] if len(losses) % log_every else []):
        start = (end - 1) // log_every * log_every
        log.append({"step": end, "loss": float(np.mean(losses[start:end]))})
    return log


# ----------------------------------------------------------------------------- checkpoints

def _extra(result):
    """The checkpoint entries beyond model, optimiser, step count, losses and config."""
    h, c = result.state
    return {
        "vocab": np.array([ord(ch) for ch in result.vocab.chars], dtype=np.int64),
        "corpus": np.array(json.dumps(result.corpus)),
        "state_h": h, "state_c": c,                       # (L, B, H): carried into step S + 1
        "rng": np.array(json.dumps(result.rng_states)),
        "valid": np.array(json.dumps(result.valid)),
        "samples": np.array(json.dumps(result.samples)),
        "chars": np.array(result.chars),
        "train_seconds": np.array(result.train_seconds),
    }


def save_charlm(path, result):
    """Write the run's checkpoint (model.npz, loadable with allow_pickle=False)."""
    save_checkpoint(path, result.model, result.optimizer, result.steps, result.losses,
                    dataclasses.asdict(result.config), extra=_extra(result))


EXTRA_KEYS = ("vocab", "corpus", "state_h", "state_c", "rng", "valid", "samples", "chars",
              "train_seconds")


def read_charlm(path):
    """The checkpoint of a character-model run, checked: load_checkpoint's dict plus
    "vocab" (a Vocabulary) and "corpus" (dict). CheckpointError otherwise."""
    checkpoint = load_checkpoint(path)
    extra = checkpoint["extra"]
    missing = [key for key in EXTRA_KEYS if key not in extra]
    if missing:
        raise CheckpointError(path, f"not a character-model checkpoint (no {', '.join(missing)})")
    try:
        checkpoint["vocab"] = texts.Vocabulary("".join(chr(c) for c in extra["vocab"].tolist()))
        checkpoint["corpus"] = json.loads(str(extra["corpus"]))
        config = {k: v for k, v in checkpoint["config"].items()
                  if k in {f.name for f in dataclasses.fields(CharLMConfig)}}
        checkpoint["charlm_config"] = CharLMConfig(**config).validate()
    except (ValueError, TypeError) as err:
        raise CheckpointError(path, f"has a malformed entry ({err})")
    return checkpoint


def load_charlm(path):
    """(model, vocab, config) of a saved character model, in eval mode.
    CheckpointError for a file that is not one."""
    checkpoint = read_charlm(path)
    config, vocab = checkpoint["charlm_config"], checkpoint["vocab"]
    model = make_model(config, len(vocab))
    try:
        model.load_state_dict(checkpoint["model"])
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(path, f"does not fit its own config: {err}")
    model.eval()
    return model, vocab, config


def _restore(path, result):
    """Load a checkpoint into a fresh run (result), after checking that it is the same run."""
    checkpoint = read_charlm(path)
    saved, cfg = checkpoint["config"], result.config
    for name in RESUME_FIELDS:
        if name not in saved:
            raise CheckpointError(path, f"its config has no {name!r}")
        if saved[name] != getattr(cfg, name):
            raise CheckpointError(path, f"was trained with {name}={saved[name]!r}, but this run "
                                        f"has {name}={getattr(cfg, name)!r}")
    theirs, ours = checkpoint["corpus"], result.corpus
    if theirs.get("sha256") != ours["sha256"]:
        raise CheckpointError(path, (
            f"was trained on another text: {theirs.get('name')!r} ({theirs.get('chars')} "
            f"characters, sha256 {str(theirs.get('sha256'))[:12]}...), but this run's is "
            f"{ours['name']!r} ({ours['chars']} characters, sha256 {ours['sha256'][:12]}...)"))
    if checkpoint["epoch"] > cfg.steps:
        raise CheckpointError(path, f"is already at step {checkpoint['epoch']}, past "
                                    f"steps={cfg.steps}")
    extra = checkpoint["extra"]
    try:
        result.model.load_state_dict(checkpoint["model"])
        result.optimizer.load_state_dict(checkpoint["optimizer"])
        h, c = extra["state_h"], extra["state_c"]
        L, B, H = cfg.num_layers, cfg.batch_size, cfg.hidden_size
        if h.shape != (L, B, H) or c.shape != (L, B, H):
            raise ValueError(f"carried states of shapes {h.shape}, {c.shape}, not {(L, B, H)}")
        result.state = (h.astype(cfg.dtype), c.astype(cfg.dtype))
        for generator, state in zip(_generators(result.model), json.loads(str(extra["rng"]))):
            generator.bit_generator.state = state
        # Without the evaluation that ended the earlier session off the eval_every
        # grid, so the history is that of a run that did not stop.
        on_grid = lambda entries: [e for e in entries if e["step"] % cfg.eval_every == 0]
        result.valid = on_grid(json.loads(str(extra["valid"])))
        result.samples = on_grid(json.loads(str(extra["samples"])))
        result.chars = int(extra["chars"])
        result.train_seconds = float(extra["train_seconds"])
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(path, f"does not fit the model: {err}")
    result.losses = list(checkpoint["losses"])


# ----------------------------------------------------------------------------- outputs

def metrics_of(result):
    """The contents of metrics.json."""
    cfg = result.config
    return {
        "config": dataclasses.asdict(cfg),
        "corpus": result.corpus,
        "split": result.split,
        "parameters": int(sum(p.data.size for p in result.model.parameters())),
        "steps": result.steps,
        "chars_trained": result.chars,
        "train_loss": train_loss_log(result.losses, cfg.log_every),
        "valid_bpc": result.valid,
        "final_valid_bpc": result.final_valid_bpc,
        "final_valid_chars": result.split["valid_scored_chars"],
        "chars_per_second": result.chars_per_second,
        "train_seconds": result.train_seconds,
    }


def samples_text(result):
    """samples.txt: the samples along training, each under a header line."""
    parts = []
    for s in result.samples:
        parts.append(f"==== step {s['step']}  (valid {s['valid_bpc']:.3f} bits per character; "
                     f"temperature {SAMPLE_TEMPERATURE:g}) ====\n{s['text']}\n\n")
    return "".join(parts)


def write_outputs(result, out, plots=True):
    """model.npz, metrics.json, samples.txt and (with ``plots``) loss.png into ``out``;
    returns the names written. OSError (naming the file) when one cannot be written."""
    metrics = metrics_of(result)
    save_charlm(os.path.join(out, "model.npz"), result)
    write_json(os.path.join(out, "metrics.json"), metrics)
    write_text(os.path.join(out, "samples.txt"), samples_text(result))
    written = ["model.npz", "metrics.json", "samples.txt"]
    if plots:
        from ..plots import plot_charlm_loss
        log = metrics["train_loss"]
        plot_charlm_loss(os.path.join(out, "loss.png"), [e["step"] for e in log],
                         [e["loss"] for e in log], [e["step"] for e in result.valid],
                         [e["bpc"] for e in result.valid], result.final_valid_bpc)
        written.append("loss.png")
    return written


# ----------------------------------------------------------------------------- command line

def add_parser(subparsers):
    """Add the ``train`` subcommand to the subparsers of ``python -m npylstm.charlm``."""
    d = CharLMConfig()
    p = subparsers.add_parser(
        "train", prog=TRAIN_PROG, help="train a character model",
        description="Train a character-level LSTM language model with truncated BPTT and "
                    "write model.npz, metrics.json, loss.png and samples.txt into --out.")
    data = p.add_argument_group("data")
    data.add_argument("--text", metavar="FILE", default=d.text,
                      help="a UTF-8 text file, used as it is (default: the Python standard "
                           "library's source, npylstm.text.python_corpus())")
    model = p.add_argument_group("model and training")
    model.add_argument("--hidden-size", type=at_least(1), default=d.hidden_size, metavar="H",
                       help="default %(default)s")
    model.add_argument("--num-layers", type=at_least(1), default=d.num_layers, metavar="L",
                       help="stacked LSTM layers (default %(default)s)")
    model.add_argument("--embedding-dim", type=at_least(1), default=d.embedding_dim, metavar="E",
                       help="default %(default)s")
    model.add_argument("--seq-len", type=at_least(1), default=d.seq_len, metavar="T",
                       help="characters per chunk, how far back the gradient reaches "
                            "(default %(default)s)")
    model.add_argument("--batch-size", type=at_least(1), default=d.batch_size, metavar="B",
                       help="contiguous streams trained side by side (default %(default)s)")
    model.add_argument("--steps", type=at_least(1), default=d.steps, metavar="S",
                       help="Adam steps, counting those of a resumed run (default %(default)s)")
    model.add_argument("--lr", type=positive_float, default=d.lr,
                       help="Adam's learning rate at the start (default %(default)s)")
    model.add_argument("--lr-half-life", type=at_least(0), default=d.lr_half_life, metavar="K",
                       help="the learning rate halves every K steps; 0: constant "
                            "(default %(default)s)")
    model.add_argument("--clip", type=positive_float, default=d.clip, metavar="MAX_NORM",
                       help="clip the total gradient norm to MAX_NORM (default %(default)s)")
    model.add_argument("--dropout", type=probability, default=d.dropout, metavar="P",
                       help="dropout between stacked LSTM layers (default %(default)s)")
    model.add_argument("--seed", type=at_least(0), default=d.seed,
                       help="initialisation (default %(default)s)")
    model.add_argument("--dtype", default=d.dtype, choices=DTYPES, help="default %(default)s")
    out = p.add_argument_group("output")
    out.add_argument("--out", default=os.path.join("runs", "charlm"), metavar="DIR",
                     help="output folder (default %(default)s)")
    out.add_argument("--resume", metavar="CHECKPOINT",
                     help="continue the run saved in CHECKPOINT (a model.npz) up to --steps; "
                          "settings not given default to the checkpoint's")
    out.add_argument("--log-every", type=at_least(1), default=d.log_every, metavar="K",
                     help="print (and log in metrics.json) the mean loss every K steps "
                          "(default %(default)s)")
    out.add_argument("--eval-every", type=at_least(1), default=d.eval_every, metavar="K",
                     help="bits per character on the fixed held-out slice, and a sample, every "
                          "K steps (default %(default)s)")
    out.add_argument("--eval-chars", type=at_least(1), default=d.eval_chars, metavar="N",
                     help="the fixed held-out slice: the first N characters of the held-out "
                          "part (default %(default)s)")
    out.add_argument("--sample-chars", type=at_least(0), default=d.sample_chars, metavar="N",
                     help="characters per sample along training, 0: none (default %(default)s)")
    out.add_argument("--no-plots", action="store_true", help="skip loss.png")
    out.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def _config_from_args(args):
    names = {f.name for f in dataclasses.fields(CharLMConfig)}
    return CharLMConfig(**{k: v for k, v in vars(args).items() if k in names})


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def print_progress(p):
    """One progress line: step, loss, validation bits per character, chars/s, time left."""
    valid = "   -  " if p.valid_bpc is None else f"{p.valid_bpc:6.3f}"
    width = len(str(p.steps))
    print(f"step {p.step:{width}d}/{p.steps}  loss {p.loss:.4f} nats ({p.loss / math.log(2):.3f} "
          f"bits)/char  valid {valid} bits/char  {p.chars_per_second:,.0f} chars/s  "
          f"{_duration(p.seconds_left)} left", flush=True)


def run(args, parser):
    """The ``train`` subcommand; returns the exit status.

    ``parser`` is this subcommand's parser; ``args.argv`` its arguments (for --resume)."""
    if args.resume is not None:
        # Settings not given on the command line default to the checkpoint's, so
        # `--resume DIR/model.npz --steps 8000` is enough to continue a run.
        try:
            saved = read_charlm(args.resume)["config"]
        except CheckpointError as err:
            return fail(TRAIN_PROG, str(err))
        parser.set_defaults(**{k: v for k, v in saved.items() if k in RESUME_FIELDS + ("text",)})
        args = parser.parse_args(args.argv)
    cfg = _config_from_args(args)
    try:
        cfg.validate()
    except ConfigError as err:
        parser.error(err.argument_message())
    try:
        make_folder(args.out)
    except OSError as err:
        return cannot_write(TRAIN_PROG, err)
    try:
        result = train_charlm(cfg, resume=args.resume,
                              progress=None if args.quiet else print_progress)
    except TextError as err:
        parser.error(f"argument --text: {err}")
    except ConfigError as err:
        parser.error(err.argument_message())
    except (CheckpointError, FileNotFoundError) as err:
        return fail(TRAIN_PROG, str(err))
    try:
        written = write_outputs(result, args.out, plots=not args.no_plots)
    except OSError as err:
        return cannot_write(TRAIN_PROG, err)
    if not args.quiet:
        c = result.corpus
        print(f"corpus {c['name']}: {c['chars']:,} characters, {c['vocab_size']} distinct; "
              f"{result.split['valid_chars']:,} held out")
        print(f"final valid: {result.final_valid_bpc:.4f} bits per character (the whole "
              f"held-out part)")
        print(f"training time: {_duration(result.train_seconds)} ({result.chars_per_second:,.0f} "
              f"chars/s)")
        print(f"wrote {', '.join(os.path.join(args.out, name) for name in written)}")
    return 0

