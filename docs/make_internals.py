"""Refresh the pictures and numbers of docs/internals.md from a trained model, in one command.

    python docs/make_internals.py runs/charlm/model.npz [--ngram 7] [--chars 20000]

1. runs ``python -m npylstm.charlm inspect CHECKPOINT --ngram K`` (into inspect/ beside the
   checkpoint), timing it;
2. copies saturation.png to docs/internals_saturation.png;
3. screenshots cells.html with headless Chromium (when ``chromium`` is installed) into
   docs/internals_cells.png, with the best in_string cell chosen (the page's first);
4. rewrites the part of docs/internals.md between the markers
   ``<!-- numbers: begin -->`` and ``<!-- numbers: end -->`` with the tables: the best
   cells per feature, the saturation per layer and gate, and the LSTM against the n-gram.
The prose around the tables compares them with Karpathy et al.; reread it after a refresh.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
BEGIN, END = "<!-- numbers: begin -->", "<!-- numbers: end -->"


def screenshot(html, png, size="1200,900"):
    """Headless Chromium's screenshot of a local page; False when there is no chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size={size}", Path(html).resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    return True


def span_example(checkpoint, chars, min_length=12):
    """LSTMVis's query on the first short string of at least ``min_length`` characters of the
    inspected text: Markdown lines naming the span and the cells that separate it best."""
    from npylstm.charlm.inspection import default_text
    from npylstm.charlm.internals import inspect_text, span_scores, top_cells
    from npylstm.charlm.train import load_charlm

    model, vocab, config = load_charlm(checkpoint)
    text, starts = default_text(config, chars)
    result = inspect_text(model, vocab, text, starts)
    inside = np.r_[0, result["features"].get("in_short_string", np.zeros(len(text), int)), 0]
    edges = np.flatnonzero(np.diff(inside))                       # run starts and ends, paired
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_length]
    if not runs:
        return []
    start, end = (int(v) for v in runs[0])
    score = span_scores(result["states"], start, end)
    best = top_cells(score, 5)
    string_cells = [(l, u) for l, u, _ in result["top"]["in_short_string"]]
    rank = {cell: k for k, cell in enumerate((l, u) for l, u, _ in top_cells(score, score.size))}
    first = string_cells[0]
    return [f"LSTMVis's query (`span_scores`) on the first short string of the text, "
            f"`{text[start:end + 1]}` (characters {start}-{end}): the cells most on inside it "
            "and off around it are " + ", ".join(f"({l}, {u}) {v:+.2f}" for l, u, v in best)
            + f"; the best `in_short_string` cell, {first}, ranks {rank[first] + 1} of "
            f"{score.size}."]


def tables(cells, errors, seconds, model_line):
    """The Markdown between the markers."""
    lines = [f"Model: {model_line}. `inspect` on {cells['chars']:,} characters took "
             f"{seconds[0]:.0f} s, and the order-{errors['ngram_order']} n-gram another "
             f"{seconds[1]:.0f} s (on the machine that ran this command).", "",
             "| feature | best cell (layer, unit) | r | next best |r| |", "|---|---|---|---|"]
    for name, rows in cells["features"].items():
        best = rows[0]
        nxt = ", ".join(f"{abs(r['r']):.2f}" for r in rows[1:4])
        lines.append(f"| {name} | ({best['layer']}, {best['unit']}) | {best['r']:+.3f} | {nxt} |")
    lines += ["", "Saturation: the mean over units of the fraction of steps left- (< 0.1) and "
              "right-saturated (> 0.9), and the share of units saturated more than half the time.",
              "", "| layer | gate | left | right | units > 50% saturated |", "|---|---|---|---|---|"]
    for row in cells["saturation"]:
        left, right = np.array(row["left"]), np.array(row["right"])
        lines.append(f"| {row['layer']} | {row['gate']} | {left.mean():.3f} | {right.mean():.3f} | "
                     f"{np.mean(left + right > 0.5):.0%} |")
    if errors:
        lines += ["", f"Bits per character of the LSTM and of the order-{errors['ngram_order']} "
                  "n-gram (interpolated Kneser-Ney, fitted on the training part) on the same "
                  "characters, by kind of character (the character predicted):", "",
                  "| characters | count | LSTM | n-gram | LSTM - n-gram |", "|---|---|---|---|---|"]
        for row in (row for row in errors["groups"] if row["chars"]):
            lines.append(f"| {row['group']} | {row['chars']} | {row['lstm_bpc']:.3f} | "
                         f"{row['ngram_bpc']:.3f} | {row['difference']:+.3f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--ngram", type=int, default=7)
    p.add_argument("--chars", type=int, default=20000)
    p.add_argument("--doc", default=str(DOCS / "internals.md"))
    args = p.parse_args(argv)
    out = Path(args.checkpoint).resolve().parent / "inspect"
    proc = subprocess.run([sys.executable, "-m", "npylstm.charlm", "inspect", args.checkpoint,
                           "--chars", str(args.chars), "--ngram", str(args.ngram), "--out",
                           str(out)], check=True, capture_output=True, text=True)
    print(proc.stdout, end="")
    timing = re.search(r"time: ([0-9.]+) s to record.*?, ([0-9.]+) s for the n-gram", proc.stdout)
    seconds = (float(timing[1]), float(timing[2]))
    shutil.copyfile(out / "saturation.png", DOCS / "internals_saturation.png")
    if not screenshot(out / "cells.html", DOCS / "internals_cells.png"):
        print("no chromium: docs/internals_cells.png not refreshed")
    cells = json.loads((out / "cells.json").read_text())
    errors = json.loads((out / "errors.json").read_text())
    from npylstm.charlm.train import read_charlm
    config = read_charlm(args.checkpoint)["config"]
    model_line = f"{config['num_layers']} layer(s) of {config['hidden_size']}, {config['steps']} steps"
    metrics = Path(args.checkpoint).resolve().parent / "metrics.json"
    if metrics.exists():
        bpc = json.loads(metrics.read_text())["final_valid_bpc"]
        model_line += f", {bpc:.3f} bits per character on the held-out part"
    doc = Path(args.doc)
    text = doc.read_text(encoding="utf-8")
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    body = "\n\n".join([tables(cells, errors, seconds, model_line),
                        *span_example(args.checkpoint, args.chars)])
    doc.write_text(text[:a] + "\n" + body + "\n" + text[b:], encoding="utf-8")
    print(f"refreshed {doc}, docs/internals_saturation.png, docs/internals_cells.png "
          f"(inspect: {seconds[0]:.0f} s, n-gram {seconds[1]:.0f} s)")


if __name__ == "__main__":
    main()
