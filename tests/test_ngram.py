"""npylstm.charlm.ngram: the interpolated Kneser-Ney character n-gram baseline (no torch).

The reference below is written from the formulas in the module docstring, in
plain Python over strings and dicts (no ranks, no np.unique), so a mistake in
the vectorised counting or lookup shows up as a disagreement.
"""
import itertools
import math

import numpy as np
import pytest

from npylstm.charlm.ngram import NGramLM, bits_per_char_by_order, count_levels, estimate_discount

TEXT = "abracadabra, cadabra! abra-ca-dabra; bracada abba cab\n" * 2 + "dab racab"


def encode(text, chars):
    return np.array([chars.index(ch) for ch in text], dtype=np.int64)


# ---- an independent, slow reference -------------------------------------------------------

def grams(seq, k):
    """{k-gram (tuple): count} of the sequence."""
    out = {}
    for i in range(len(seq) - k + 1):
        g = tuple(seq[i:i + k])
        out[g] = out.get(g, 0) + 1
    return out


def continuation(seq, k):
    """{k-gram: number of distinct characters seen right before it}."""
    before = {}
    for i in range(1, len(seq) - k + 1):
        before.setdefault(tuple(seq[i:i + k]), set()).add(seq[i - 1])
    return {g: len(s) for g, s in before.items()}


def discount(counts, fixed):
    if fixed is not None:
        return fixed
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 else 0.5


class Reference:
    """P(w | history) by the recursion of the module docstring, one probability at a time."""

    def __init__(self, seq, V, K, fixed=None):
        self.V, self.K = V, K
        self.raw = {k: grams(seq, k) for k in range(1, K + 1)}
        self.cont = {k: continuation(seq, k) for k in range(1, K + 1)}
        self.D_raw = {k: discount(self.raw[k], fixed) for k in self.raw}
        self.D_cont = {k: discount({g: c for g, c in self.cont[k].items() if c}, fixed)
                       for k in self.cont}

    def level(self, w, h, highest):
        """P_k(w | h) with k = len(h) + 1; raw counts if highest, else continuation counts."""
        k = len(h) + 1
        lower = 1.0 / self.V if k == 1 else self.level(w, h[1:], highest=False)
        counts = self.raw[k] if highest else self.cont[k]
        D = self.D_raw[k] if highest else self.D_cont[k]
        following = {g[-1]: c for g, c in counts.items() if g[:-1] == tuple(h) and c > 0}
        total = sum(following.values())
        if total == 0:
            return lower
        return (max(following.get(w, 0) - D, 0) + D * len(following) * lower) / total

    def prob(self, w, history):
        h = tuple(history[max(0, len(history) - (self.K - 1)):]) if self.K > 1 else ()
        return self.level(w, h, highest=True)


# ---- the tests ----------------------------------------------------------------------------

@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("fixed", [None, 0.75])
def test_agrees_with_the_reference_on_a_tiny_text(K, fixed):
    chars = sorted(set(TEXT)) + ["Z"]              # one character never seen in training
    V = len(chars)
    train, held = TEXT[:90], "cadabra abraZ,bab!\nracadab"
    model = NGramLM(K, V, discount=fixed).fit(encode(train, chars))
    ref = Reference(encode(train, chars).tolist(), V, K, fixed)
    ids = encode(held, chars).tolist()
    expected = [math.log(ref.prob(ids[t], ids[:t])) for t in range(len(ids))]
    got = model.log_probs(np.array(ids))
    # the same sums in another order: round-off only
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13,
                               err_msg=f"log-probabilities, order {K}, discount {fixed}")


@pytest.mark.parametrize("K", [1, 2, 3])
def test_every_conditional_distribution_sums_to_one(K):
    """Exhaustively over every context of K - 1 characters, seen or not, on a tiny text."""
    chars = sorted(set(TEXT)) + ["Z"]
    V = len(chars)
    model = NGramLM(K, V).fit(encode(TEXT, chars))
    for h in itertools.product(range(V), repeat=K - 1):
        seqs = np.array([list(h) + [w] for w in range(V)], dtype=np.int64)
        p = np.array([math.exp(model.log_probs(s)[-1]) for s in seqs])
        assert (p > 0).all(), f"a zero probability after context {h}"
        assert abs(p.sum() - 1) < 1e-12, f"P(. | {h}) sums to {p.sum()!r}"


def test_sums_to_one_for_long_contexts_on_random_text():
    rng = np.random.default_rng(0)
    V, K = 5, 6
    train = rng.integers(0, V - 1, size=400)       # V - 1 never occurs in training
    model = NGramLM(K, V).fit(train)
    for start in [0, 17, 200, 394]:
        h = train[start:start + K - 1]
        p = np.exp([model.log_probs(np.append(h, w))[-1] for w in range(V)])
        assert (p > 0).all() and abs(p.sum() - 1) < 1e-12, (start, p)


def test_order_one_without_discount_is_the_unigram_frequency():
    chars = sorted(set(TEXT))
    ids = encode(TEXT, chars)
    model = NGramLM(1, len(chars), discount=0.0).fit(ids)
    expected = np.log(np.bincount(ids, minlength=len(chars)) / len(ids))
    np.testing.assert_allclose(model.log_probs(np.arange(len(chars))), expected, rtol=1e-13)


def test_a_deterministic_text_is_learned_and_the_floor_is_uniform():
    V = 4
    train = np.tile([0, 1, 2], 50)                # 3 always follows 2 never: ...0 1 2 0 1 2...
    model = NGramLM(3, V).fit(train)
    assert model.bits_per_char(np.tile([0, 1, 2], 5)[2:]) < 0.2
    # a never-seen character gets less than it would under the uniform distribution, but > 0
    p_unseen = math.exp(model.log_probs(np.array([0, 1, 3]))[-1])
    assert 0 < p_unseen < 1 / V
    # an untrained-on vocabulary: the empty training text leaves the uniform distribution
    empty = NGramLM(3, V).fit(np.array([], dtype=np.int64))
    np.testing.assert_allclose(empty.log_probs(np.array([0, 3, 2])), np.log(1 / V) * np.ones(3))


def test_by_order_equals_separate_fits():
    rng = np.random.default_rng(1)
    V = 6
    train = rng.integers(0, V, size=3000) // 2 * 2 + (rng.random(3000) < 0.1)   # some structure
    valid = rng.integers(0, V, size=300)
    one_pass = bits_per_char_by_order(train, valid, V, 5)
    separate = [NGramLM(k, V).fit(train).bits_per_char(valid) for k in range(1, 6)]
    assert one_pass == separate                  # the same operations in one process


def test_the_counts_of_a_level():
    x = np.array([0, 1, 0, 1, 1], dtype=np.int64)   # bigrams: 01, 10, 01, 11
    level = list(count_levels(x, 2, 2))[1]
    # keys are rank(first char) * V + second char; the 1-grams 0 and 1 have ranks 0 and 1
    assert level.keys.tolist() == [0 * 2 + 1, 1 * 2 + 0, 1 * 2 + 1]
    assert level.count.tolist() == [2, 1, 1]
    # 01 is preceded by 1 (at 2); 10 by 0; 11 by 0: the 01 at 0 has nothing before it
    assert level.cont.tolist() == [1, 1, 1]
    assert level.count_total.tolist() == [2, 2] and level.count_types.tolist() == [1, 2]
    assert estimate_discount(np.array([1, 1, 2, 3])) == 2 / (2 + 2)
    assert estimate_discount(np.array([2, 3])) == 0.5


@pytest.mark.parametrize("kwargs, match", [
    (dict(order=0, vocab_size=3), "order"),
    (dict(order=2.0, vocab_size=3), "order"),
    (dict(order=2, vocab_size=0), "vocab_size"),
    (dict(order=2, vocab_size=3, discount=1.5), "discount"),
    (dict(order=2, vocab_size=3, discount=-0.1), "discount"),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NGramLM(**kwargs)


def test_bad_ids_raise():
    model = NGramLM(2, 3)
    with pytest.raises(RuntimeError, match="fit"):
        model.log_probs(np.array([0, 1]))
    for bad, match in [(np.array([0, 3]), r"\[0, 3\)"), (np.array([-1, 0]), r"\[0, 3\)"),
                       (np.array([[0, 1]]), r"\(1, 2\)"), (np.array([0.0, 1.0]), "integer")]:
        with pytest.raises(ValueError, match=match):
            model.fit(bad)


# ---- the command line ---------------------------------------------------------------------

def run_cli(argv):
    from npylstm.charlm.__main__ import main
    return main(["ngram"] + argv)


def test_cli_prints_every_order_and_writes_json(tmp_path, capsys):
    import json
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x + 1\n" * 40 + "ça\n", encoding="utf-8")
    assert run_cli(["--order", "3", "--text", str(text), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("order")] == \
        ["order  1", "order  2", "order  3"]
    results = json.loads((tmp_path / "o" / "ngram.json").read_text())
    assert results["orders"] == [1, 2, 3] and len(results["valid_bpc"]) == 3
    assert results["corpus"]["chars"] == len(text.read_text(encoding="utf-8"))
    assert results["corpus"]["vocab_size"] == len(set(text.read_text(encoding="utf-8")))
    assert results["valid_chars"] == round(0.05 * results["corpus"]["chars"])
    assert results["best_valid_bpc"] == min(results["valid_bpc"])
    # a repeated line is almost certain after two characters of context
    assert results["valid_bpc"][2] < results["valid_bpc"][0]


@pytest.mark.parametrize("argv, needle", [
    (["--order", "0"], "--order"),
    (["--order", "x"], "--order"),
    (["--discount", "1.5"], "--discount"),
    (["--discount", "nan"], "--discount"),
    (["--text", "/nonexistent/file.txt"], "/nonexistent/file.txt"),
    (["--order"], "--order"),
    (["--bogus"], "unrecognized"),
])
def test_cli_bad_arguments_exit_2(argv, needle, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_cli_text_not_utf8_or_too_short_exits_2(tmp_path, capsys):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1") * 50)
    short = tmp_path / "short.txt"
    short.write_text("ab", encoding="utf-8")
    for path in (latin, short):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(["--text", str(path), "--out", str(tmp_path)])
        assert exit_info.value.code == 2
        assert path.name in capsys.readouterr().err
