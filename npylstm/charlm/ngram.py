"""A count-based character n-gram model with interpolated Kneser-Ney smoothing.

The baseline that the character LSTM has to beat: what counting alone predicts.
It works on the same integer ids, the same vocabulary (V characters) and the
same train/validation split as the LSTM.

Notation. x is the training text as ids; an order-K model predicts x_t from
the K - 1 characters before it. A context h is a string of k - 1 characters,
hw is h followed by the character w, and h' is h without its first (oldest)
character. From the training text:

    c(hw)         the number of times hw occurs
    N1+(.hw)      the number of distinct characters a that precede hw (ahw occurs);
                  the "continuation count" of Kneser & Ney
    n(hw)         c(hw) at the highest level of the model, N1+(.hw) at the lower ones
    n(h)          = sum_w n(hw),  the level's total for the context h
    N1+(h.)       = #{w : n(hw) > 0},  the number of distinct characters seen after h

Interpolated Kneser-Ney (Chen & Goodman 1999, eq. 17 with one discount per
level). Level k (context length k - 1, for k = 1..K) is

    P_k(w | h) = max(n(hw) - D_k, 0) / n(h)  +  D_k N1+(h.) / n(h) * P_{k-1}(w | h')
    P_k(w | h) = P_{k-1}(w | h')                   if n(h) = 0 (h never seen)
    P_0(w)     = 1 / V                             (uniform over the vocabulary)

Each level is a distribution over the V characters whenever the one below is:
the first term sums to (n(h) - D_k N1+(h.)) / n(h) for 0 <= D_k <= 1 (every
n(hw) > 0 is at least 1), the second to D_k N1+(h.) / n(h). With D_k > 0 at
every level every probability is > 0, down to the uniform floor.

- The highest level uses the raw counts c; the levels below it use the
  continuation counts N1+(.hw), which measure in how many contexts a string
  is seen rather than how often: the probability of w given a short context
  matters only where the longer context was not seen.
- Near the start of a text, where fewer than K - 1 characters precede x_t,
  the model uses the longest context there is, and that level counts with c
  (it is the highest level for that character).
- The discount of each level and count type (c or N1+) is Ney, Essen &
  Kneser's (1994) estimate  D = n1 / (n1 + 2 n2),  where n1 and n2 are the
  numbers of n-grams of that level whose count is exactly 1 and exactly 2.
  When there are no counts of 1 (n1 = 0, a tiny text) the estimate would be
  0, and D = 0.5 is used instead, so probabilities stay > 0. A fixed
  ``discount`` in [0, 1] replaces all of them (0 gives the maximum-likelihood
  counts at the highest level, and zeros for what was not seen).

How it counts without a Python loop over the characters: every k-gram of the
text is encoded as one int64, ``rank(its first k - 1 characters) * V + its
last character``, where rank is the index of the (k - 1)-gram among the
sorted distinct (k - 1)-grams. ``np.unique`` of these keys gives the sorted
distinct k-grams, their counts and the rank of the k-gram at every position,
which the next level's keys are built from. The keys stay below
(number of distinct (k-1)-grams) * V, so any order fits in an int64. A new
text is looked up level by level with ``np.searchsorted`` in the same keys.

    model = NGramLM(order=5, vocab_size=V).fit(train_ids)
    model.log_probs(valid_ids)        # (T,) natural logs, nats
    model.bits_per_char(valid_ids)
    bits_per_char_by_order(train_ids, valid_ids, V, max_order=10)   # every order, one pass
"""
import math
import time
from dataclasses import dataclass

import numpy as np

LN2 = math.log(2.0)


@dataclass
class Level:
    """The counts of one level k of the model (contexts of k - 1 characters).

    U is the number of distinct k-grams of the training text, C the number of
    distinct (k - 1)-grams (the possible contexts; the rank of a context is its
    index among them).

        keys          (U,) int64, sorted: rank(context) * V + w, one per distinct k-gram
        count         (U,) c(hw)
        cont          (U,) N1+(.hw) (0 for a k-gram seen only at the start of the text)
        count_total   (C,) sum_w c(hw) per context      count_types (C,) #{w: c(hw) > 0}
        cont_total    (C,) sum_w N1+(.hw) per context   cont_types  (C,) #{w: N1+(.hw) > 0}
        discount_count, discount_cont: D_k for the raw counts and for the continuation counts
    """
    order: int
    keys: np.ndarray
    count: np.ndarray
    cont: np.ndarray
    count_total: np.ndarray
    count_types: np.ndarray
    cont_total: np.ndarray
    cont_types: np.ndarray
    discount_count: float
    discount_cont: float


def estimate_discount(counts):
    """Ney, Essen & Kneser's D = n1 / (n1 + 2 n2), or 0.5 where there are no counts of 1."""
    n1 = int(np.count_nonzero(counts == 1))
    n2 = int(np.count_nonzero(counts == 2))
    return n1 / (n1 + 2 * n2) if n1 > 0 else 0.5


def check_ids(ids, vocab_size, name="ids"):
    """ids as a 1-D int64 array with every value in [0, vocab_size), or ValueError."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of ids (T,), got shape {ids.shape}")
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name}: expected integer ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name}: ids must lie in [0, {vocab_size}), got values in "
                         f"[{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64, copy=False)


def count_levels(ids, vocab_size, order, discount=None):
    """Yield the Level of each k = 1..order of the training ids (T,), one at a time.

    A generator, so a caller that needs one level at a time (bits_per_char_by_order)
    holds only one level's tables, and the (T,) ranks of the previous level.
    """
    x = check_ids(ids, vocab_size)
    V, T = vocab_size, len(x)
    prefix = np.zeros(T, dtype=np.int64)    # rank of the (k-1)-gram starting at each position
    contexts = 1                            # C: one empty context for k = 1
    for k in range(1, order + 1):
        n = max(T - k + 1, 0)               # the number of k-grams in the text
        key = prefix[:n] * V + x[k - 1:k - 1 + n]                  # (n,)
        keys, rank, count = np.unique(key, return_inverse=True, return_counts=True)
        rank = rank.reshape(-1)             # numpy 2.0 / 2.1 shaped the inverse like the input
        # N1+(.hw): the distinct (preceding character, k-gram) pairs, counted per k-gram.
        # The k-gram at position i + 1 is preceded by x[i].
        pairs = np.unique(rank[1:] * V + x[:max(n - 1, 0)])
        cont = np.bincount(pairs // V, minlength=len(keys))
        context = keys // V                 # (U,) the rank of each k-gram's context
        # Counts are int32 (a text under 2**31 characters) to halve the memory of the tables.
        yield Level(
            order=k, keys=keys, count=count.astype(np.int32), cont=cont.astype(np.int32),
            count_total=np.bincount(context, weights=count, minlength=contexts).astype(np.int32),
            count_types=np.bincount(context, minlength=contexts).astype(np.int32),
            cont_total=np.bincount(context, weights=cont, minlength=contexts).astype(np.int32),
            cont_types=np.bincount(context[cont > 0], minlength=contexts).astype(np.int32),
            discount_count=estimate_discount(count) if discount is None else discount,
            discount_cont=estimate_discount(cont) if discount is None else discount)
        prefix, contexts = rank, len(keys)


class _Evaluation:
    """Walks a text (T,) up through the levels: P_k for every character, from P_{k-1}.

    After ``step(level)`` for k = 1..K:
        top      (T,) P(x_t | context) of the order-k model (level k with raw counts)
        lower    (T,) P_k with continuation counts, the level below for k + 1
    """

    def __init__(self, ids, vocab_size):
        self.y = ids
        self.V = vocab_size
        T = len(ids)
        # The rank of the (k-1)-gram starting at each position among the training's; -1: unseen.
        self.ranks = np.zeros(T, dtype=np.int64)
        self.lower = np.full(T, 1.0 / vocab_size)  # P_0: uniform
        self.top = self.lower.copy()

    def step(self, level):
        k, y, V = level.order, self.y, self.V
        n = max(len(y) - k + 1, 0)          # characters x_t with t >= k - 1 have a context of k - 1
        below = self.lower[k - 1:]          # (n,) P_{k-1}(x_t | h'), t = k-1 .. T-1
        context = self.ranks[:n]            # (n,) rank of the context h of x_t; -1: h never seen
        if len(level.keys) == 0:            # a training text shorter than k: nothing to add
            self.top = np.concatenate([self.top[:k - 1], below])
            self.ranks = np.full(n, -1, dtype=np.int64)
            return
        seen = context >= 0
        context = np.where(seen, context, 0)
        key = context * V + y[k - 1:]
        at = np.minimum(np.searchsorted(level.keys, key), len(level.keys) - 1)
        found = seen & (level.keys[at] == key)  # hw was seen; at is its index in keys

        def interpolate(counts, total, types, D):
            total, types = total[context], types[context]
            has = seen & (total > 0)
            num = np.where(found, np.maximum(counts[at] - D, 0.0), 0.0)
            p = below.copy()
            p[has] = (num[has] + D * types[has] * below[has]) / total[has]
            return p

        top = interpolate(level.count, level.count_total, level.count_types, level.discount_count)
        lower = interpolate(level.cont, level.cont_total, level.cont_types, level.discount_cont)
        # The order-k model is level k (raw counts) where k - 1 characters precede x_t; its
        # first k - 1 characters keep the lower orders' values (the longest context there is).
        self.top = np.concatenate([self.top[:k - 1], top])
        self.lower = np.concatenate([self.lower[:k - 1], lower])
        self.ranks = np.where(found, at, -1)


class NGramLM:
    """An order-K character model with interpolated Kneser-Ney smoothing (see the module docstring).

    Inputs:
        order       K >= 1: predicts each character from the K - 1 before it
        vocab_size  V: ids are in [0, V); the floor of the interpolation is 1 / V
        discount    None (estimated per level) or a fixed D in [0, 1]
    """

    def __init__(self, order, vocab_size, discount=None):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) \
                or vocab_size < 1:
            raise ValueError(f"vocab_size must be an integer >= 1, got {vocab_size!r}")
        if discount is not None and not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1] (or None to estimate it), "
                             f"got {discount!r}")
        self.order, self.vocab_size, self.discount = int(order), int(vocab_size), discount
        self.levels = None

    def fit(self, ids):
        """Count the training ids (T,). Returns self.

        Memory: 16 bytes per distinct n-gram of each order and 16 per distinct
        context. On the 11.5 M training characters of the stdlib, orders 1..10 have
        12 M distinct n-grams in all and their tables take 0.33 GB; counting peaks
        at about 1.3 GB (np.unique's sorted copies of the (T,) keys).
        """
        if len(ids) >= 2**31:
            raise ValueError(f"NGramLM.fit: counts are int32, so at most 2**31 - 1 ids, "
                             f"got {len(ids)}")
        self.levels = list(count_levels(ids, self.vocab_size, self.order, self.discount))
        return self

    def log_probs(self, ids):
        """ln P(ids[t] | ids[t-K+1:t]) for every t, in nats: (T,) float64.

        The text is scored on its own: its first K - 1 characters have shorter contexts.
        """
        if self.levels is None:
            raise RuntimeError("NGramLM: call fit(train_ids) before log_probs")
        walk = _Evaluation(check_ids(ids, self.vocab_size), self.vocab_size)
        for level in self.levels:
            walk.step(level)
        return np.log(walk.top)

    def bits_per_char(self, ids):
        """The mean of -log2 P over the ids (T,): bits per character."""
        return float(-self.log_probs(ids).mean() / LN2)

    def discounts(self):
        """[(D_k for raw counts, D_k for continuation counts)] for k = 1..K."""
        return [(level.discount_count, level.discount_cont) for level in self.levels]


def bits_per_char_by_order(train_ids, valid_ids, vocab_size, max_order, discount=None,
                           on_order=None):
    """Validation bits per character of the order-k model for every k = 1..max_order.

    One pass up the levels, holding one level's tables at a time, so it costs
    about as much as fitting the order-max_order model once. ``on_order(k, bpc,
    seconds)``, if given, is called as each order is done (seconds since the start).
    Returns a list of max_order floats.
    """
    valid = check_ids(valid_ids, vocab_size, "valid_ids")
    walk = _Evaluation(valid, vocab_size)
    start = time.perf_counter()
    bpc = []
    for level in count_levels(train_ids, vocab_size, max_order, discount):
        walk.step(level)
        bpc.append(float(-np.log(walk.top).mean() / LN2))
        if on_order is not None:
            on_order(level.order, bpc[-1], time.perf_counter() - start)
    return bpc


# ---- the experiment: python -m npylstm.charlm ngram ----------------------------------------

PROG = "python -m npylstm.charlm ngram"


@dataclass
class NGramConfig:
    """The n-gram baseline's settings (the defaults are the command's)."""
    order: int = 10                 # K: validation bits per character of every order 1..K
    text: str = None                # a UTF-8 file, used as it is; None: python_corpus()
    discount: float = None          # None: D = n1 / (n1 + 2 n2) per level; or a fixed D in [0, 1]


def run_ngram(config, text=None, name=None, log=print):
    """Fit the order-1..K models on the training part and score the held-out part.

    The vocabulary is that of the whole text and the split is
    ``npylstm.text.split_train_valid``'s, as for the LSTM (charlm.train.make_data).
    ``text`` (a str) replaces the corpus of ``config.text``. Writes no files;
    prints one line per order through ``log``. Returns the results as a dict
    (ngram.json): config, corpus, train_chars, valid_chars, orders, valid_bpc
    (bits per character, one per order), seconds (since the start, at each
    order), best_order, best_valid_bpc. ValueError for a text too short to split.
    """
    from ..text import Vocabulary, corpus_info, split_train_valid
    from .train import load_text
    if text is None:
        name, text = load_text(config)
    vocab = Vocabulary.from_text(text)
    train, valid = split_train_valid(vocab.encode(text))
    log(f"corpus {name}: {len(text):,} characters, {len(vocab)} distinct; "
        f"{len(train):,} counted, the last {len(valid):,} held out")
    seconds = []

    def report(k, bpc, elapsed):
        seconds.append(round(elapsed, 2))
        log(f"order {k:2d}: {bpc:.4f} bits per character  ({elapsed:.1f} s)")

    bpc = bits_per_char_by_order(train, valid, len(vocab), config.order, config.discount, report)
    best = int(np.argmin(bpc))
    return {"config": {"order": config.order, "text": config.text, "discount": config.discount,
                       "smoothing": "interpolated Kneser-Ney"},
            "corpus": corpus_info(name, text),
            "train_chars": len(train), "valid_chars": len(valid),
            "orders": list(range(1, config.order + 1)), "valid_bpc": bpc, "seconds": seconds,
            "best_order": best + 1, "best_valid_bpc": bpc[best]}


def unit_interval(text):
    """An argparse type: a number in [0, 1]."""
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:                 # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_parser(subparsers):
    """The ``ngram`` subcommand's parser (see npylstm/charlm/__main__.py)."""
    import os
    from ..argtypes import at_least
    parser = subparsers.add_parser(
        "ngram", help="the count-based n-gram baseline: held-out bits per character",
        description="Interpolated Kneser-Ney character n-grams on the same text, vocabulary "
                    "and train/held-out split as `train`: prints the held-out bits per "
                    "character of every order 1..K and writes DIR/ngram.json.")
    parser.add_argument("--order", type=at_least(1), default=NGramConfig.order, metavar="K",
                        help="the highest order (default %(default)s)")
    parser.add_argument("--text", metavar="FILE", default=None,
                        help="a UTF-8 text file, used as it is (default: the Python standard "
                             "library's source, npylstm.text.python_corpus())")
    parser.add_argument("--discount", type=unit_interval, default=None, metavar="D",
                        help="a fixed discount in [0, 1] for every level (default: estimated "
                             "per level, n1 / (n1 + 2 n2))")
    parser.add_argument("--out", metavar="DIR", default=os.path.join("runs", "charlm"),
                        help="writes DIR/ngram.json (default %(default)s)")
    return parser


def run(args, parser):
    """The ``ngram`` subcommand: print every order, write ngram.json. Returns the exit status."""
    import os
    from ..argtypes import fail
    from ..files import cannot_write, make_folder, write_json
    from .train import TextError, load_text
    config = NGramConfig(order=args.order, text=args.text, discount=args.discount)
    try:
        name, text = load_text(config)
    except TextError as err:
        parser.error(f"argument --text: {err}")
    except FileNotFoundError as err:        # a Python without its stdlib's sources
        return fail(PROG, str(err))
    try:
        results = run_ngram(config, text=text, name=name)
    except ValueError as err:               # too short to hold a part out
        parser.error(f"argument --text: {name!r} is too short: {err}")
    print(f"best: order {results['best_order']}, {results['best_valid_bpc']:.4f} bits per "
          f"character")
    path = os.path.join(args.out, "ngram.json")
    try:
        make_folder(args.out)
        write_json(path, results)
    except OSError as err:
        return cannot_write(PROG, err)
    print(f"wrote {path}")
    return 0
