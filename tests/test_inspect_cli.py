"""``python -m npylstm.charlm inspect`` on a tiny trained model: the files, the keys, the errors."""
import json
import os
from html.parser import HTMLParser

import numpy as np
import pytest

from npylstm.charlm.__main__ import main

SOURCE = '''# file: a.py
def f(x, y):
    """Add "x" and y."""
    if x > y:  # compare
        return [x, (y + 1)]
    return {'k': x}
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer model of 5 cells, trained 3 steps on a small Python text."""
    folder = tmp_path_factory.mktemp("inspect")
    corpus = folder / "corpus.py"
    corpus.write_text(SOURCE * 60, encoding="utf-8")
    code = main(["train", "--text", str(corpus), "--hidden-size", "5", "--num-layers", "2",
                 "--embedding-dim", "3", "--seq-len", "8", "--batch-size", "4", "--steps", "3",
                 "--eval-every", "3", "--eval-chars", "100", "--sample-chars", "0",
                 "--dtype", "float64", "--quiet", "--no-plots", "--out", str(folder / "run")])
    assert code == 0
    return folder


@pytest.fixture
def run(capsys):
    """``inspect`` with these arguments, in this process: (exit status, stdout, stderr)."""
    def call(*args):
        try:
            code = main(["inspect", *map(str, args)])
        except SystemExit as exit:                     # argparse's errors
            code = exit.code
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_inspect_writes_the_three_files_with_the_contract_keys(tiny, run):
    checkpoint = tiny / "run" / "model.npz"
    code, out, err = run(checkpoint, "--chars", 130)
    assert code == 0, err
    folder = tiny / "run" / "inspect"                 # the default: beside the checkpoint
    assert sorted(os.listdir(folder)) == ["cells.html", "cells.json", "saturation.png"]
    cells = json.loads((folder / "cells.json").read_text())
    assert set(cells) == {"chars", "features", "saturation"}
    assert cells["chars"] == 130
    assert set(cells["features"]) == {"in_string", "in_comment", "bracket_depth", "indent", "column",
                                      "in_short_string", "in_triple_string", "in_string_or_comment"}
    for name, rows in cells["features"].items():
        assert rows and all(set(row) == {"layer", "unit", "r"} for row in rows)
        assert all(0 <= row["layer"] < 2 and 0 <= row["unit"] < 5 for row in rows)
        assert all(-1 <= row["r"] <= 1 for row in rows)
        assert [abs(row["r"]) for row in rows] == sorted((abs(row["r"]) for row in rows), reverse=True)
        best = rows[0]
        assert f"{name:21s} layer {best['layer']} unit {best['unit']:4d}   r = {best['r']:+.3f}" in out
    assert [(row["layer"], row["gate"]) for row in cells["saturation"]] == \
        [(k, g) for k in range(2) for g in "ifo"]
    for row in cells["saturation"]:
        assert set(row) == {"layer", "gate", "left", "right"} and len(row["left"]) == 5
        assert all(0 <= a and 0 <= b and a + b <= 1 for a, b in zip(row["left"], row["right"]))
    assert (folder / "saturation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    HTMLParser().feed((folder / "cells.html").read_text(encoding="utf-8"))


def test_inspect_a_text_file_and_the_ngram_table(tiny, tmp_path, run):
    text = tmp_path / "t.py"
    text.write_text("def f(y):\n    return 'y'  # x\n", encoding="utf-8")
    code, out, err = run(tiny / "run" / "model.npz", "--text", text, "--out", tmp_path / "o",
                         "--ngram", 3)
    assert code == 0, err
    errors = json.loads((tmp_path / "o" / "errors.json").read_text())
    assert errors["ngram_order"] == 3
    rows = {row["group"]: row for row in errors["groups"]}
    assert rows["all"]["chars"] == len(text.read_text()) - 1          # the first has no prediction
    assert np.isclose(rows["all"]["difference"], rows["all"]["lstm_bpc"] - rows["all"]["ngram_bpc"])


def test_inspect_errors(tiny, tmp_path, run):
    checkpoint = tiny / "run" / "model.npz"
    text = tmp_path / "t.txt"
    text.write_text("def f(): return 'Ω€'\n", encoding="utf-8")
    code, _, err = run(checkpoint, "--text", text, "--out", tmp_path / "o")
    assert code == 2 and "'Ω'" in err and "'€'" in err and "Traceback" not in err
    code, _, err = run(checkpoint, "--text", tmp_path / "missing.txt")
    assert code == 2 and "missing.txt" in err
    code, _, err = run(checkpoint, "--chars", 1)
    assert code == 2
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(bad)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "bad.npz" in err
    code, _, err = run(tmp_path / "nothing.npz")
    assert code == 1 and len(err.strip().splitlines()) == 1
