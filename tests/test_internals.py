"""Inside the character model (issue 17): text features, correlations, spans, saturation, the page.

Features are checked on snippets whose answer is written out by hand below each
snippet, character by character; the analysis on planted data whose answer is
known by construction.
"""
import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from npylstm.charlm import cellpage, internals
from npylstm.charlm.features import EXTRA_NAMES, FEATURE_NAMES, closing_distance, column, text_features


def digits(values):
    return "".join(str(int(v)) for v in values)


def lines_of(src, values):
    """The per-character values as digit strings, one per line of src (newline included)."""
    out, t = [], 0
    for line in src.splitlines(keepends=True):
        out.append(digits(values[t:t + len(line)]))
        t += len(line)
    return out


# --- features on hand-checked snippets ---------------------------------------------------------

def test_string_with_an_escaped_quote():
    src = 's = "a\\"b" + x\n'
    #      s   =   " a \ " b " +   x \n
    f = text_features(src)
    assert len(src) == 15
    # the opening quote (offset 4) and the escaped quote inside are in; the closing quote is out
    assert digits(f["in_string"]) == "000011111000000"
    assert digits(f["in_comment"]) == "0" * 15
    assert digits(f["bracket_depth"]) == "0" * 15
    dist = closing_distance(src)
    assert dist[9] == 5 and dist.sum() == 5          # the closing quote, 5 back from the opening


def test_comment_after_code():
    src = "x = 1  # note\ny = 2\n"
    f = text_features(src)
    assert lines_of(src, f["in_comment"]) == ["00000001111110", "000000"]
    assert lines_of(src, f["in_string"]) == ["00000000000000", "000000"]
    assert lines_of(src, f["in_string_or_comment"]) == ["00000001111110", "000000"]
    assert f["column"].tolist() == list(range(14)) + list(range(6))


def test_nested_brackets_across_a_line_break():
    src = "a = f(b[1,\n    2]) + {3: (4)}\n"
    f = text_features(src)
    # an opening bracket counts itself, a closing one does not
    assert lines_of(src, f["bracket_depth"]) == ["00000112222", "2222210000111122100"]
    # the continuation line belongs to the statement of line 1: indentation 0, not 4
    assert lines_of(src, f["indent"]) == ["0" * 11, "0" * 19]
    dist = closing_distance(src)
    assert dist[src.index("]")] == src.index("]") - src.index("[")
    assert dist[src.index(")")] == src.index(")") - src.index("(")
    assert dist[src.index("}")] == src.index("}") - src.index("{")


def test_indent_and_dedent():
    src = "if x:\n    y = 1\n    z = (1,\n  2)\n\n# c\nw = 3\n"
    f = text_features(src)
    assert lines_of(src, f["indent"]) == ["000000", "4444444444", "444444444444", "44444", "4",
                                          "4444", "000000"]
    assert lines_of(src, f["column"])[1] == "0123456789"
    assert lines_of(src, f["bracket_depth"])[2:4] == ["000000001111", "11100"]


def test_unclosed_string_at_the_end_does_not_raise():
    src = 'x = 1\ny = "abc'
    f = text_features(src)
    assert set(f) == set(FEATURE_NAMES + EXTRA_NAMES)
    assert digits(f["in_string"]) == "000000" + "00001111"
    assert digits(f["in_short_string"]) == "000000" + "00001111"
    src = 'x = (1\ny = """abc\ndef\n'
    f = text_features(src)
    assert lines_of(src, f["in_string"]) == ["0000000", "00001111111", "1111"]
    assert lines_of(src, f["in_triple_string"]) == ["0000000", "00001111111", "1111"]
    assert f["in_short_string"].sum() == 0
    assert lines_of(src, f["bracket_depth"])[0] == "0000111"


def test_fstring_is_one_string_on_every_python():
    # 3.12+ tokenizes the fields of an f-string as separate tokens, 3.9-3.11 as one STRING.
    src = 'a = f"x{b + [1][0]}y" + rb\'q\'\n'
    f = text_features(src)
    assert digits(f["in_string"]) == "00000111111111111111000000110" + "0"
    assert digits(f["bracket_depth"]) == "0" * len(src)
    assert f["in_triple_string"].sum() == 0
    src = 'b = f"""x{y}"""\n'
    f = text_features(src)
    assert digits(f["in_triple_string"]) == "00000" + "1111111" + "0000"
    assert digits(f["in_short_string"]) == "0" * len(src)


def test_file_headers_split_the_tokenizing():
    # The first file ends inside a bracket; the second must start at depth 0.
    src = "# file: a.py\nx = (1,\n# file: b.py\ny = 2\n"
    f = text_features(src)
    assert lines_of(src, f["in_comment"])[0] == "1" * 12 + "0"
    assert lines_of(src, f["bracket_depth"]) == ["0" * 13, "00001111", "0" * 13, "000000"]


def test_text_that_is_not_python_keeps_only_column():
    prose = "It's a fine day, isn't it? 'Tis.\nHe said: 'no'.\nWe're done; you'll see.\n" * 5
    f = text_features(prose)
    assert list(f) == ["column"]
    assert list(f["column"][:4]) == [0, 1, 2, 3]
    assert list(text_features("x = 1\n", python=False)) == ["column"]


def test_column():
    assert list(column("ab\nc\n\nd")) == [0, 1, 2, 0, 1, 0, 0]


# --- analysis on planted data ------------------------------------------------------------------

def planted_states(T=600, L=2, H=16, seed=0):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(size=(T, L, H)))


def test_correlation_finds_a_planted_cell_first():
    rng = np.random.default_rng(1)
    T = 600
    feature = (rng.random(T) < 0.3).astype(float)
    states = planted_states(T)
    states[:, 1, 5] = np.tanh(2 * feature - 1 + 0.3 * rng.normal(size=T))      # the planted cell
    states[:, 0, 3] = 0.2                                                    # a constant cell
    r = internals.correlations(states, {"planted": feature, "flat": np.ones(T)})
    assert list(r) == ["planted"]                                            # constant feature left out
    assert r["planted"].shape == (2, 16)
    assert r["planted"][0, 3] == 0.0
    top = internals.top_cells(r["planted"], k=3)
    assert top[0][:2] == (1, 5) and top[0][2] > 0.8
    assert abs(top[1][2]) < 0.3                                              # the rest is noise
    # a negatively planted cell ranks by |r| as well
    states[:, 0, 7] = -states[:, 1, 5]
    top = internals.top_cells(internals.correlations(states, {"p": feature})["p"], k=2)
    assert {c[:2] for c in top} == {(1, 5), (0, 7)} and top[0][2] == pytest.approx(-top[1][2])


def test_span_finder_on_planted_data():
    states = 0.1 * planted_states(400)
    states[100:140, 0, 2] += 0.9                 # on inside the span, off around it
    states[:, 1, 4] += 0.9                       # on everywhere: not specific to the span
    states[100:140, 1, 9] -= 0.8                 # off inside, on (0) around: negative score
    score = internals.span_scores(states, 100, 140)
    order = np.argsort(-np.abs(score), axis=None)
    assert np.unravel_index(order[0], score.shape) == (0, 2)
    assert np.unravel_index(order[1], score.shape) == (1, 9)
    assert score[0, 2] > 0.8 and score[1, 9] < -0.7 and abs(score[1, 4]) < 0.1
    with pytest.raises(ValueError):
        internals.span_scores(states, 140, 100)


def test_saturation_fractions_on_constructed_gates():
    T = 10
    gate = np.full((T, 3), 0.5)
    gate[:3, 0] = 0.05                           # unit 0: 3 of 10 steps below 0.1
    gate[:, 1] = 0.95                            # unit 1: always above 0.9
    gate[:4, 2], gate[4:5, 2] = 0.0, 1.0         # unit 2: 4 left, 1 right
    gate[5, 2] = 0.1                             # exactly 0.1 and 0.9 are not saturated
    gate[6, 2] = 0.9
    left, right = internals.saturation(gate)
    assert left.tolist() == [0.3, 0.0, 0.4] and right.tolist() == [0.0, 1.0, 0.1]
    record = {name: np.stack([gate, gate[:, ::-1]], axis=1) for name in "ifo"}   # (T, 2, 3)
    table = internals.saturation_table(record)
    assert [(row["layer"], row["gate"]) for row in table] == [(0, "i"), (0, "f"), (0, "o"),
                                                              (1, "i"), (1, "f"), (1, "o")]
    assert table[0]["left"] == [0.3, 0.0, 0.4] and table[2]["right"] == [0.0, 1.0, 0.1]
    assert table[3]["left"] == [0.4, 0.0, 0.3] and table[5]["right"] == [0.1, 1.0, 0.0]


def test_error_table_groups():
    src = 'x = (a,\n     "s")  # c\n'
    f = text_features(src)
    groups = internals.error_groups(src, f, far=3)
    T = len(src)
    close = src.index(")")
    assert groups["closing bracket, opened > 3 chars back"][close]
    assert groups["closing quote, opened <= 3 chars back"][src.index('s")') + 1]
    assert groups["indentation (leading spaces)"].sum() == 5
    assert groups["inside a comment"].sum() == 3
    assert groups["all"].sum() == T
    lstm = np.ones(T)
    ngram = np.full(T, 2.0)
    lstm[close] = 0.0
    rows = {row["group"]: row for row in internals.error_table(lstm, ngram, groups)}
    assert rows["closing bracket, opened > 3 chars back"]["difference"] == -2.0
    assert rows["inside a comment"]["difference"] == -1.0 and rows["all"]["chars"] == T
    empty = internals.error_table(lstm, ngram, {"none": np.zeros(T, bool)})
    assert empty == [{"group": "none", "chars": 0, "lstm_bpc": None, "ngram_bpc": None,
                      "difference": None}]


# --- the page ----------------------------------------------------------------------------------

class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.attrs, self.tags, self.pre, self._in_pre, self.scripts = [], [], [], False, []
        self._script = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self._in_pre = self._in_pre or tag == "pre"
        if tag == "script":
            self._script = dict(attrs)

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._in_pre:
            self.pre.append(data)
        if self._script is not None:
            self.scripts.append((self._script, data))


def test_cells_html_is_self_contained_and_escaped(tmp_path):
    text = 'if a < b:\n    s = "</pre><script>alert(1)</script>"  # & more\n' * 3
    T, L, H = len(text), 2, 5
    states = np.tanh(np.linspace(-2, 2, T * L * H).reshape(T, L, H))
    top = {"in_string": [(1, 3, 0.91), (0, 1, -0.5)], "column": [(1, 3, 0.2)]}
    path = cellpage.write_cells_html(tmp_path / "cells.html", text, states, top)
    page = path.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(page)
    parser.close()
    # the text comes back exactly from the <pre>, and no tag of the text became a tag
    assert "".join(parser.pre) == text
    assert parser.tags.count("script") == 2 and parser.tags.count("pre") == 1
    # nothing loaded from elsewhere
    assert not [v for k, v in parser.attrs if k in ("src", "href")]
    assert not re.search(r"https?://", page)
    # the stored values are the quantised cells
    blob = json.loads(next(data for attrs, data in parser.scripts if attrs.get("id") == "cells"))
    assert set(blob) == {"L1U3", "L0U1"}
    stored = np.frombuffer(base64.b64decode(blob["L1U3"]), dtype=np.int8)
    assert np.abs(stored / 127 - states[:, 1, 3]).max() <= 0.5 / 127 + 1e-12
    assert "r = +0.91" in page and "r = -0.50" in page


def test_cells_html_size_bound():
    # 20,000 characters, 40 cells to choose from: about 1 MB (27 kB per cell).
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("abc def():\n"), size=20000))
    states = np.tanh(rng.normal(size=(20000, 2, 32)))
    top = {f"feature{k}": [(k % 2, u, 0.5) for u in range(8)] for k in range(5)}
    size = len(cellpage.cells_html(text, states, top).encode("utf-8"))
    assert size < 1.5e6, size


def test_saturation_png(tmp_path):
    record = {name: np.random.default_rng(0).random((50, 2, 4)) for name in "ifo"}
    path = cellpage.plot_saturation(tmp_path / "sat.png", internals.saturation_table(record))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the whole analysis on a tiny model ---------------------------------------------------------

def test_inspect_text_on_a_tiny_model_agrees_with_the_fast_path():
    from npylstm.charlm import CharLM
    from npylstm.module import no_grad
    from npylstm.text import Vocabulary

    text = "# file: a.py\ndef f(x):\n    return [x, 'a']  # c\n" * 4
    vocab = Vocabulary.from_text(text)
    model = CharLM(len(vocab), hidden_size=6, num_layers=2, embedding_dim=4, dtype=np.float64, rng=0)
    result = internals.inspect_text(model, vocab, text, top=3)
    T = len(text)
    assert result["states"].shape == (T, 2, 6)
    with no_grad():
        logits, (h_n, c_n) = model(vocab.encode(text)[:, None])
    # the plain cell's last states are the fast path's (same process: round-off only)
    assert np.allclose(np.arctanh(result["states"][-1]), c_n[:, 0], atol=1e-10)
    # bits per character: entry t from the logits after character t-1
    z = logits[:-1, 0]
    log_p = z - z.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    expected = -log_p[np.arange(T - 1), vocab.encode(text)[1:]] / np.log(2)
    assert np.isnan(result["bits"][0]) and np.allclose(result["bits"][1:], expected, atol=1e-10)
    cells = internals.cells_json(result)
    assert set(cells) == {"chars", "features", "saturation"} and cells["chars"] == T
    assert set(cells["features"]) <= set(FEATURE_NAMES + EXTRA_NAMES)
    assert "in_string" in cells["features"]
    for rows in cells["features"].values():
        assert len(rows) == 3 and set(rows[0]) == {"layer", "unit", "r"}
        assert [abs(row["r"]) for row in rows] == sorted((abs(row["r"]) for row in rows), reverse=True)
    assert [(row["layer"], row["gate"]) for row in cells["saturation"]] == \
        [(k, g) for k in range(2) for g in "ifo"]
    assert all(len(row["left"]) == 6 for row in cells["saturation"])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        internals.inspect_text(model, vocab, text + "§")


def test_held_out_text_starts_at_a_file_boundary():
    corpus = "".join(f"# file: m{k}.py\nx = {k}\n" * 1 for k in range(100))
    text, starts = internals.held_out_text(corpus, chars=30)
    assert text.startswith("# file: m") and len(text) == 30 and starts[0] == 0
    assert corpus.endswith(internals.held_out_text(corpus, chars=10**6)[0])
