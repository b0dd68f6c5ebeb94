"""Features of a text, one value per character, for finding cells that track them.

Karpathy, Johnson & Fei-Fei (2015) found cells that turn on inside quotes, count
the characters of a line, or follow the indentation. ``text_features`` gives the
quantities such a cell could track, from Python's own tokenizer (``tokenize``),
as (T,) arrays for a text of T characters:

- ``in_string``: 1 inside a string literal, else 0. The prefix letters (``r``,
  ``b``, ``f``, ...) are outside; the opening quote character(s) are inside; the
  closing quote character(s) are outside. This is the state *after reading* the
  character, as a cell state c_t is: after the opening quote the model is in
  the string, after the closing quote it is out. An f-string counts as one
  string, its ``{...}`` fields included, on every Python: 3.12+ tokenizes the
  fields as separate tokens (FSTRING_START ... FSTRING_END), 3.9-3.11 as one
  STRING token, and both give the same values here.
- ``in_comment``: 1 from the ``#`` to the last character before the end of the
  line, else 0 (the newline is outside).
- ``bracket_depth``: the number of open ``(``, ``[``, ``{`` after reading the
  character: an opening bracket counts itself, a closing bracket does not.
  Brackets inside strings and comments (and in f-string fields) do not count.
- ``indent``: the indentation, in columns (a tab to the next multiple of 8), of
  the statement that the character's line belongs to. Every character of a line
  gets it, the leading whitespace and the newline included. A continuation line
  (inside brackets, a triple-quoted string or after a backslash) has its
  statement's indentation, not its own; a blank or comment-only line keeps that
  of the statement before it (0 at the start of a file).
- ``column``: the character's position in its line, counting from 0; a newline
  has the length of the line it ends.
- ``in_short_string`` and ``in_triple_string``: ``in_string`` split by the
  string's quotes, one (a quote or an apostrophe) or three (docstrings are
  these), with the same edges. A cell that follows short quotes, like Karpathy
  et al.'s quote cell, need not follow docstrings, which span whole paragraphs.
- ``in_string_or_comment``: 1 where ``in_string`` or ``in_comment`` is: the
  text that is not code. The default model's strongest cell tracks this
  (docs/internals.md), which none of the features above names.

Only ``column`` is kept for text that is not Python (``text_features`` decides,
below). ``closing_distance`` gives, for the character that closes a bracket or
a string, how far back its opening was (the error analysis groups by it).

Text that does not tokenize does not raise. The text is tokenized file by file
(the corpus's ``# file: path`` header lines start files), and within a file up
to the first error. What follows an error is handled plainly: an unclosed
string there (typically the text cut off inside it) is marked as in the string
to the end of its line (to the end of the file for a triple quote); the rest of
the file until the next line at indentation 0 keeps the bracket depth reached
and counts as neither string nor comment, each line its own indentation; and
the tokenizer starts again at that line. The text is called Python when at most
10% of its characters fall in such untokenized parts (an unclosed quote before
the last line of a file counts to its line's end) and the tokenizer stopped at
most 2 + T / 2000 times. Text that starts in the middle of a file, inside a
docstring say, may fail that test (about 3 in 10 random 20,000-character cuts of
the stdlib did; none of 100 cuts that start at a file): start at a file or at a
top-level line, or pass ``python=True``.
"""
import io
import re
import tokenize

import numpy as np

from ..text import file_starts

FEATURE_NAMES = ("in_string", "in_comment", "bracket_depth", "indent", "column")
# in_string split in two: a cell that tracks a short quote need not track a docstring.
EXTRA_NAMES = ("in_short_string", "in_triple_string", "in_string_or_comment")

_STRING_START = re.compile(r"[A-Za-z]*('''|\"\"\"|'|\")")
_OPEN, _CLOSE = "([{", ")]}"
_NO_STATEMENT = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
                 tokenize.DEDENT, tokenize.ENDMARKER}
# Python 3.12+ tokenizes f-strings (3.14: t-strings too) into pieces.
_PIECE_START = {getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, n)}
_PIECE_END = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, n)}
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_MAX_RESTARTS = 50      # per file: past this the rest of the file is left untokenized


def column(text):
    """(T,) int64: each character's position in its line (a newline: the line's length)."""
    T = len(text)
    chars = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)        # (T,) code points
    idx = np.arange(T)
    line_start = np.where(chars == ord("\n"), idx + 1, 0)                  # where the next line starts
    line_start = np.maximum.accumulate(np.concatenate([[0], line_start]))[:T]
    return (idx - line_start).astype(np.int64)


def _width(whitespace):
    """Columns of leading whitespace, a tab to the next multiple of 8 (as tokenize counts)."""
    col = 0
    for ch in whitespace:
        if ch == "\t":
            col = (col // 8 + 1) * 8
        elif ch == " ":
            col += 1
        else:                                   # form feed: tokenize resets the column
            col = 0
    return col


class _Scan:
    """Per-character marks of one file, filled by tokenizing it (see the module docstring)."""

    def __init__(self, seg):
        self.seg = seg
        self.lines = _LINE.findall(seg)              # with their newlines; row r is lines[r - 1]
        self.line_start = np.cumsum([0] + [len(s) for s in self.lines])[:-1]
        n = len(seg)
        self.string = np.zeros(n + 1, np.int64)     # +1 at a string's first inside char, -1 after
        self.triple = np.zeros(n + 1, np.int64)     # the same, for triple-quoted strings only
        self.comment = np.zeros(n + 1, np.int64)
        self.brackets = np.zeros(n + 1, np.int64)   # +1 at an opener, -1 at a closer
        self.close_dist = np.zeros(n, np.int64)
        self.statement_row = np.zeros(len(self.lines), bool)
        self.untokenized = 0                        # characters the tokenizer could not read
        self.errors = 0                             # times it stopped
        self.stack = []                             # offsets of open brackets

    def offset(self, row, col):
        return int(self.line_start[row - 1]) + col if row - 1 < len(self.lines) else len(self.seg)

    def mark_string(self, start, end, quote_len):
        """A string token seg[start:end], prefix and quotes included."""
        body = _STRING_START.match(self.seg, start)
        first = body.start(1) if body else start
        closed = end - quote_len
        self.string[first] += 1
        self.string[closed] -= 1
        if quote_len == 3:
            self.triple[first] += 1
            self.triple[closed] -= 1
        if closed < len(self.close_dist):
            self.close_dist[closed] = closed - first

    def run(self):
        """Tokenize from the start; after an error, mark and restart at the next top-level line."""
        row0 = 1
        while row0 <= len(self.lines):
            stop = self._tokenize_from(row0)
            if stop is None:
                return
            self.errors += 1
            row0 = self._skip(stop, give_up=self.errors > _MAX_RESTARTS)

    def _tokenize_from(self, row0):
        """Tokenize lines row0.. (1-based); None when done, else the offset where it stopped."""
        lines = iter(self.lines[row0 - 1:])
        readline = lambda: next(lines, "")
        shift = row0 - 1
        pieces = []                                   # offsets of open f-strings (3.12+)
        new_statement = True
        last_end = self.offset(row0, 0)
        try:
            for tok in tokenize.generate_tokens(readline):
                kind, (r0, c0), (r1, c1) = tok.type, tok.start, tok.end
                start, end = self.offset(r0 + shift, c0), self.offset(r1 + shift, c1)
                if kind == tokenize.ERRORTOKEN and not tok.string.isspace():
                    return start                      # 3.9-3.11: e.g. an unclosed quote
                if kind in _PIECE_START:
                    pieces.append(start)
                elif kind in _PIECE_END and pieces:
                    first = pieces.pop()
                    if not pieces:                    # the outermost f-string closes
                        self.mark_string(first, end, len(tok.string))
                elif pieces:
                    pass                              # inside an f-string's field: part of the string
                elif kind == tokenize.STRING:
                    quote = _STRING_START.match(tok.string)
                    self.mark_string(start, end, len(quote.group(1)) if quote else 1)
                elif kind == tokenize.COMMENT:
                    self.comment[start] += 1
                    self.comment[end] -= 1
                elif kind == tokenize.OP and tok.string in _OPEN:
                    self.brackets[start] += 1
                    self.stack.append(start)
                elif kind == tokenize.OP and tok.string in _CLOSE:
                    if self.stack:
                        self.brackets[start] -= 1
                        self.close_dist[start] = start - self.stack.pop()
                if kind == tokenize.NEWLINE:
                    new_statement = True
                elif kind not in _NO_STATEMENT and new_statement:
                    self.statement_row[r0 + shift - 1] = True
                    new_statement = False
                if kind not in (tokenize.DEDENT, tokenize.ENDMARKER):
                    last_end = max(last_end, end)
        except (tokenize.TokenError, SyntaxError):    # IndentationError is a SyntaxError
            return max(last_end, self.offset(row0, 0))
        return None

    def _skip(self, stop, give_up):
        """After an error at offset ``stop``: mark an unclosed string, return the row to restart at."""
        seg, n = self.seg, len(self.seg)
        pos = stop
        while pos < n and seg[pos] in " \t\f\\":
            pos += 1
        row = int(np.searchsorted(self.line_start, pos, side="right"))   # 1-based row of pos
        line_end = (self.offset(row, len(self.lines[row - 1].rstrip("\n")))
                    if row <= len(self.lines) else n)
        quote = _STRING_START.match(seg, pos)
        if quote:
            triple = len(quote.group(1)) == 3
            end = n if triple else line_end
            self.string[quote.start(1)] += 1
            self.string[end] -= 1
            if triple:
                self.triple[quote.start(1)] += 1
                self.triple[end] -= 1                                  # the rest of the file is that string
                return len(self.lines) + 1
        # The next line at indentation 0 that is not blank: a fresh top-level statement.
        nxt = row + 1
        while not give_up and nxt <= len(self.lines):
            line = self.lines[nxt - 1]
            if line and not line[0].isspace():
                break
            nxt += 1
        if give_up:
            nxt = len(self.lines) + 1
        end = self.offset(nxt, 0) if nxt <= len(self.lines) else n
        # An unclosed quote in the last line is the text cut off inside a string; anywhere else
        # it is not Python (an apostrophe in prose, say) and counts as untokenized.
        last_line = row >= len(self.lines)
        self.untokenized += end - (line_end if quote and last_line else stop)
        for r in range(row, min(nxt, len(self.lines) + 1)):
            if self.lines[r - 1].strip():
                self.statement_row[r - 1] = True
        return nxt

    def indent(self):
        """(n,) the indentation of each character's statement (module docstring)."""
        stripped = [line.rstrip("\n") for line in self.lines]
        lead = np.array([_width(line[:len(line) - len(line.lstrip())]) for line in stripped]
                        + [0])
        rows = np.arange(len(self.lines))
        last = np.maximum.accumulate(np.where(self.statement_row, rows, -1))
        per_row = np.where(last >= 0, lead[np.maximum(last, 0)], 0)
        lengths = np.array([len(line) for line in self.lines], dtype=np.int64)
        return np.repeat(per_row, lengths)


def _scan_files(text, starts=None):
    """Tokenize each file of the text; the marks concatenated, and the untokenized count."""
    starts = sorted({0, *(file_starts(text) if starts is None else starts)})
    bounds = [s for s in starts if 0 <= s < len(text)] + [len(text)]
    parts = {k: [] for k in ("in_string", "in_triple_string", "in_comment", "bracket_depth",
                             "indent", "close_dist")}
    untokenized = errors = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        scan = _Scan(text[a:b])
        scan.run()
        parts["in_string"].append(np.clip(np.cumsum(scan.string)[:-1], 0, 1))
        parts["in_triple_string"].append(np.clip(np.cumsum(scan.triple)[:-1], 0, 1))
        parts["in_comment"].append(np.clip(np.cumsum(scan.comment)[:-1], 0, 1))
        parts["bracket_depth"].append(np.maximum(np.cumsum(scan.brackets)[:-1], 0))
        parts["indent"].append(scan.indent())
        parts["close_dist"].append(scan.close_dist)
        untokenized += scan.untokenized
        errors += scan.errors
    empty = np.zeros(0, np.int64)
    out = {k: (np.concatenate(v) if v else empty).astype(np.int64) for k, v in parts.items()}
    return out, untokenized, errors


def text_features(text, starts=None, *, python=None):
    """The features of a text, one value per character (definitions: module docstring).

    Inputs:
    - text: str of T characters
    - starts: offsets where files start (default: ``npylstm.text.file_starts``,
      the corpus's ``# file: path`` header lines); each file is tokenized on its own
    - python: True or False to decide whether the text is Python; None (default)
      decides by tokenizing: Python if at most 10% of it fails to tokenize and
      the tokenizer stops at most 2 + T / 2000 times

    Returns:
    - dict name -> (T,) int64 array: "in_string", "in_comment", "bracket_depth",
      "indent", "in_short_string", "in_triple_string", "in_string_or_comment",
      "column" for Python;
      "column" alone otherwise
    """
    features = {"column": column(text)}
    if python is False or not text:
        return features
    marks, untokenized, errors = _scan_files(text, starts)
    if python is None and (untokenized > 0.1 * len(text) or errors > 2 + len(text) / 2000):
        return features
    marks["in_short_string"] = marks["in_string"] * (1 - marks["in_triple_string"])
    marks["in_string_or_comment"] = marks["in_string"] | marks["in_comment"]
    return {name: marks[name] for name in FEATURE_NAMES[:4] + EXTRA_NAMES} | features


def closing_distance(text, starts=None):
    """(T,) int64: at a closing bracket or the first closing quote of a string, the
    distance back to its opening bracket or opening quote; 0 at every other character."""
    return _scan_files(text, starts)[0]["close_dist"]
