"""Looking inside a trained character model: ``python -m npylstm.charlm inspect``.

    python -m npylstm.charlm inspect runs/charlm/model.npz            # -> runs/charlm/inspect/
    python -m npylstm.charlm inspect model.npz --text some.py --chars 5000 --out look/

It runs the model over a text one character at a time with the plain cell
(``internals.inspect_text``), and writes saturation.png, cells.json and
cells.html (``cellpage.write_inspection``); it prints the best cell for each
feature of the text. With ``--ngram K`` it also fits an order-K n-gram on the
training part of the corpus and writes errors.json: both models' bits per
character grouped by what the character is (``internals.error_table``).
"""
import math
import os
import time

import numpy as np

from ..argtypes import at_least, fail
from ..checkpoint import CheckpointError
from ..files import cannot_write, make_folder, write_json

PROG = "python -m npylstm.charlm inspect"


def default_text(config, chars):
    """(text, starts) for a model trained with ``config``: the held-out part of its corpus,
    from its first file boundary (``internals.held_out_text``). TextError or
    FileNotFoundError when the corpus cannot be read."""
    from .internals import held_out_text
    from .train import load_text

    _, corpus = load_text(config)
    return held_out_text(corpus, chars)


def ngram_bits(config, vocab, text, order):
    """(T,) bits per character of an order-K n-gram fitted on the training part of the
    model's corpus (the split the model trained on), on ``text``."""
    from ..text import split_train_valid
    from .ngram import NGramLM
    from .train import load_text

    _, corpus = load_text(config)
    train, _ = split_train_valid(vocab.encode(corpus))
    model = NGramLM(order, len(vocab)).fit(train)
    return -model.log_probs(vocab.encode(text)) / math.log(2.0)


def add_parser(subparsers):
    """Add the ``inspect`` subcommand to the subparsers of ``python -m npylstm.charlm``."""
    p = subparsers.add_parser(
        "inspect", prog=PROG, help="look inside a trained model: cells and gate saturation",
        description="Run a trained character model over a text with the plain cell and write "
                    "saturation.png, cells.json and cells.html (docs/internals.md).")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a model.npz written by train")
    p.add_argument("--text", metavar="FILE",
                   help="a UTF-8 text file (default: the held-out part of the training corpus, "
                        "from a file boundary)")
    p.add_argument("--chars", type=at_least(2), default=20000, metavar="N",
                   help="the first N characters of the text (default %(default)s)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: inspect/ beside the checkpoint)")
    p.add_argument("--top", type=at_least(1), default=8, metavar="K",
                   help="cells listed per feature in cells.json and cells.html (default %(default)s)")
    p.add_argument("--ngram", type=at_least(1), metavar="K",
                   help="also fit an order-K n-gram on the training part and write errors.json, "
                        "both models' bits per character by kind of character")
    return p


def _read_text(parser, path, chars):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        parser.error(f"argument --text: cannot read {path!r}: {err.strerror or err}")
    try:
        return data.decode("utf-8")[:chars]
    except UnicodeDecodeError as err:
        parser.error(f"argument --text: {path!r} is not UTF-8 text (byte {err.start})")


def run(args, parser):
    """The ``inspect`` subcommand; returns the exit status."""
    from ..text import file_starts
    from .cellpage import write_inspection
    from .internals import error_groups, error_table, inspect_text
    from .train import TextError, load_charlm

    try:
        model, vocab, config = load_charlm(args.checkpoint)
    except CheckpointError as err:
        return fail(PROG, str(err))
    if args.text is not None:
        text = _read_text(parser, args.text, args.chars)
        starts = file_starts(text)
        if len(text) < 2:
            parser.error(f"argument --text: {args.text!r} has fewer than 2 characters")
    else:
        try:
            text, starts = default_text(config, args.chars)
        except (TextError, FileNotFoundError) as err:
            return fail(PROG, f"cannot read the training corpus of {args.checkpoint}: {err}")
    unknown = sorted(set(text) - set(vocab.chars))
    if unknown:
        parser.error(f"argument --text: {len(unknown)} character(s) not in the model's "
                     f"vocabulary: {', '.join(repr(c) for c in unknown[:10])}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "inspect")
    start = time.perf_counter()
    result = inspect_text(model, vocab, text, starts, top=args.top)
    try:
        make_folder(out)
        written = write_inspection(result, out)
        seconds = time.perf_counter() - start
        if args.ngram:
            ngram_start = time.perf_counter()
            ngram = ngram_bits(config, vocab, text, args.ngram)
            ngram_seconds = time.perf_counter() - ngram_start
            table = error_table(result["bits"], ngram, error_groups(text, result["features"], starts))
            write_json(os.path.join(out, "errors.json"), {"ngram_order": args.ngram, "groups": table})
            written["errors.json"] = os.path.join(out, "errors.json")
    except OSError as err:
        return cannot_write(PROG, err)
    print(f"{len(text):,} characters, {model.lstm.num_layers} layer(s) of {model.lstm.hidden_size} "
          f"cells; the best cell per feature (Pearson r of tanh(c) with the feature):")
    for name, cells in result["top"].items():
        layer, unit, r = cells[0]
        print(f"  {name:21s} layer {layer} unit {unit:4d}   r = {r:+.3f}")
    for row in result["saturation"]:
        if row["gate"] == "i":
            print(f"  layer {row['layer']}: " + ", ".join(
                f"{r['gate']} left {np.mean(r['left']):.2f} right {np.mean(r['right']):.2f}"
                for r in result["saturation"] if r["layer"] == row["layer"])
                + " (mean fractions of steps saturated)")
    if args.ngram:
        print(f"bits per character, LSTM against the order-{args.ngram} n-gram:")
        for row in (row for row in table if row["chars"]):
            print(f"  {row['group']:40s} {row['chars']:6d} chars  LSTM {row['lstm_bpc']:.3f}  "
                  f"n-gram {row['ngram_bpc']:.3f}  difference {row['difference']:+.3f}")
    print(f"time: {seconds:.1f} s to record, analyse and draw"
          + (f", {ngram_seconds:.1f} s for the n-gram" if args.ngram else ""))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
