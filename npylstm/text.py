"""Text for the character model: the vocabulary, the default corpus and the batch layout.

    text = python_corpus()                       # the stdlib's own source, one str
    vocab = Vocabulary.from_text(text)           # its sorted characters
    ids = vocab.encode(text)                     # (M,) int64
    train_ids, valid_ids = split_train_valid(ids)    # the last 5 % held out
    streams = batchify(train_ids, B)             # (L, B): B contiguous streams, one per column

Shapes: M characters, B streams, L = M // B steps per stream.
"""
import functools
import hashlib
import os
import re
import sys
import sysconfig

import numpy as np

# python_corpus() maps every character outside printable ASCII (" " to "~"),
# "\n" and "\t" to this one character, U+FFFD, Unicode's own "replacement
# character". That folds the ~130 rare non-ASCII characters of the stdlib
# (names in docstrings, box drawing, ...) and the control characters ("\r",
# "\f", "\x0c", "\x1b", ...) into one id; the default vocabulary is then at most
# 95 + 2 + 1 = 98 characters.
PLACEHOLDER = "\ufffd"
_OUTSIDE = re.compile("[^\t\n -~]")

# Directories left out of python_corpus(): the test suites and installed packages.
EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages",
                           "__pycache__"})

# The line that python_corpus() puts before every file; file_starts() finds them.
HEADER = "# file: {}\n"
_HEADER_LINE = re.compile(r"^# file: \S+\.py$", re.MULTILINE)


class Vocabulary:
    """A sorted set of characters; character chars[k] has id k.

    Encoding maps characters to ids through a table indexed by code point,
    vectorised, so the 12 M characters of the default corpus take a fraction
    of a second.
    """

    def __init__(self, chars):
        chars = str(chars)
        if not chars or list(chars) != sorted(set(chars)):
            raise ValueError("Vocabulary: chars must be a non-empty str of distinct characters "
                             f"in sorted order, got {chars[:40]!r}")
        self.chars = chars
        self._codes = _code_points(chars)                    # (V,) sorted uint32
        self._table = np.full(int(self._codes[-1]) + 1, -1, np.int64)   # code point -> id, -1 if absent
        self._table[self._codes] = np.arange(len(chars))

    @classmethod
    def from_text(cls, text):
        """The vocabulary of every distinct character of ``text``."""
        return cls("".join(sorted(set(text))))

    def __len__(self):
        return len(self.chars)

    def __repr__(self):
        return f"Vocabulary({len(self)} characters)"

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def encode(self, text):
        """text (str of M characters) -> ids (M,) int64; ValueError naming a character
        that is not in the vocabulary."""
        codes = _code_points(text)
        if codes.size and codes.max() >= len(self._table):
            self._raise_unknown(codes)
        ids = self._table[codes]
        if ids.size and ids.min() < 0:
            self._raise_unknown(codes)
        return ids

    def _raise_unknown(self, codes):
        unknown = np.setdiff1d(codes, self._codes)
        shown = ", ".join(repr(chr(c)) for c in unknown[:10].tolist())
        raise ValueError(f"Vocabulary.encode: {len(unknown)} character(s) not in the "
                         f"vocabulary: {shown}")

    def decode(self, ids):
        """ids (M,) integers in [0, V) -> str of M characters."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() >= len(self))):
            raise ValueError(f"Vocabulary.decode: expected integer ids in [0, {len(self)}), "
                             f"got dtype {ids.dtype}")
        return self._codes[ids.reshape(-1)].tobytes().decode("utf-32-le")


def _code_points(text):
    """The code points of a str as a (M,) uint32 array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def fold(text):
    """``text`` with every character outside printable ASCII, "\\n" and "\\t" replaced by
    PLACEHOLDER (U+FFFD), e.g. fold("café\\r\\n") == "caf\\ufffd\\ufffd\\n"."""
    return _OUTSIDE.sub(PLACEHOLDER, text)


def stdlib_root():
    """The folder of the running Python's standard library sources."""
    return sysconfig.get_paths()["stdlib"]


def stdlib_files(root=None):
    """The relative paths (with "/") of the .py files under ``root`` (default: the
    stdlib), sorted, without the folders in EXCLUDED_DIRS."""
    root = stdlib_root() if root is None else os.fspath(root)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]    # prune: never walk into them
        rel = os.path.relpath(folder, root)
        for name in files:
            if name.endswith(".py"):
                found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return sorted(found)


@functools.lru_cache(maxsize=4)
def python_corpus(root=None):
    """The default corpus: the running Python's standard library sources as one str.

    - Its .py files in sorted order of their relative paths, without the test
      suites (every folder named test, tests or idle_test: test/,
      lib2to3/tests, idlelib/idle_test, ...), site-packages and dist-packages.
    - Each file is preceded by a header line "# file: <relative path>\\n"
      (see ``file_starts``) and ends with "\\n".
    - Files are read as UTF-8 (the stdlib is; an undecodable byte would become
      U+FFFD) with no newline translation, then folded (``fold``): every
      character outside printable ASCII, "\\n" and "\\t" becomes U+FFFD. This
      includes "\\r", "\\f" and the other control characters.
    The same on every call in one Python (and cached); it differs between Python
    versions (CPython 3.11: about 12 M characters in about 730 files).
    ``root`` replaces the stdlib folder (for tests).

    Raises FileNotFoundError when there are no sources (some embedded or
    stripped Pythons ship only .pyc files).
    """
    folder = stdlib_root() if root is None else os.fspath(root)
    files = stdlib_files(folder) if os.path.isdir(folder) else []
    if not files:
        raise FileNotFoundError(
            f"python_corpus: no standard library sources (.py files) in {folder!r} for "
            f"Python {sys.version.split()[0]}; train on a text file instead with --text FILE")
    parts = []
    for rel in files:
        with open(os.path.join(folder, rel), "rb") as f:
            source = f.read().decode("utf-8", errors="replace")
        if source and not source.endswith("\n"):
            source += "\n"
        parts.append(HEADER.format(rel) + source)
    return fold("".join(parts))


def file_starts(text):
    """The offsets in ``text`` of python_corpus()'s header lines, one per file, ascending.

    A header is a whole line "# file: <path>.py"; text without any gives [].
    """
    return [m.start() for m in _HEADER_LINE.finditer(text)]


def corpus_info(name, text):
    """The description of a corpus for metrics.json: {"name", "chars", "sha256", "vocab_size"}.

    chars is the length in characters, sha256 that of the UTF-8 bytes, vocab_size
    the number of distinct characters, all of the text as trained on.
    """
    return {"name": str(name), "chars": len(text),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "vocab_size": len(set(text))}


def split_train_valid(ids_or_text, valid_fraction=0.05):
    """(train, valid): the last ``valid_fraction`` of a str or 1-D array held out.

    The cut is at M - round(M * valid_fraction), so both parts are contiguous
    and together are the whole input. Every consumer (the LSTM's training and
    the n-gram baseline) uses this one split. ValueError when a part would be
    empty.
    """
    if not 0 < valid_fraction < 1:
        raise ValueError(f"split_train_valid: valid_fraction must be in (0, 1), got {valid_fraction!r}")
    M = len(ids_or_text)
    n_valid = int(round(M * valid_fraction))
    if n_valid < 1 or n_valid >= M:
        raise ValueError(f"split_train_valid: {M} characters are too few to hold out "
                         f"{valid_fraction} of them with both parts non-empty")
    return ids_or_text[:M - n_valid], ids_or_text[M - n_valid:]


def batchify(ids, batch_size):
    """Lay out one id stream as B contiguous streams: (L, B) with column b = ids[b*L:(b+1)*L].

    L = M // B; the last M - L B ids are dropped (torch's word_language_model
    ``batchify``). Reading the rows in order then walks all B streams forward at
    once, which is what lets the LSTM state be carried from one chunk to the next.

    Inputs:
    - ids: (M,) integers
    - batch_size: B >= 1, at most M

    Returns:
    - streams: (L, B) int64, C-contiguous
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"batchify: expected ids of shape (M,), got {ids.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size <= len(ids):
        raise ValueError(f"batchify: batch_size must be an integer in [1, {len(ids)}], "
                         f"got {batch_size!r}")
    L = len(ids) // batch_size
    return np.ascontiguousarray(ids[:L * batch_size].reshape(batch_size, L).T, dtype=np.int64)
