"""npylstm.text: the vocabulary, the default corpus, the split and the batch layout."""
import hashlib

import numpy as np
import pytest

from npylstm import text


@pytest.fixture(scope="module")
def corpus():
    return text.python_corpus()              # once per module: ~12 M characters


def test_vocabulary_round_trip():
    s = "def f(x):\n\treturn 'é' + x  # ü\n"
    vocab = text.Vocabulary.from_text(s)
    assert vocab.chars == "".join(sorted(set(s))) and len(vocab) == len(set(s))
    ids = vocab.encode(s)
    assert ids.dtype == np.int64 and ids.shape == (len(s),)
    assert [vocab.chars[i] for i in ids] == list(s)            # id k is chars[k]
    assert vocab.decode(ids) == s
    assert vocab.encode("") .shape == (0,) and vocab.decode(np.array([], np.int64)) == ""


def test_vocabulary_unknown_character_is_named():
    vocab = text.Vocabulary.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'"):
        vocab.encode("abz")
    with pytest.raises(ValueError, match=r"'é'"):
        vocab.encode("é")
    with pytest.raises(ValueError):
        vocab.decode(np.array([3]))
    with pytest.raises(ValueError):
        text.Vocabulary("ba")                                  # not sorted


def test_fold():
    assert text.fold("café\r\n\tx\f~ ") == "caf\ufffd\ufffd\n\tx\ufffd~ "
    printable = "".join(chr(c) for c in range(32, 127)) + "\n\t"
    assert text.fold(printable) == printable
    assert text.fold("\x00\x7f\u00a0😀") == "\ufffd" * 4


def test_batchify_layout():
    ids = np.arange(23)
    streams = text.batchify(ids, 4)                            # L = 23 // 4 = 5; 3 dropped
    assert streams.shape == (5, 4) and streams.dtype == np.int64 and streams.flags.c_contiguous
    for b in range(4):
        np.testing.assert_array_equal(streams[:, b], ids[b * 5:(b + 1) * 5])
    with pytest.raises(ValueError):
        text.batchify(ids, 24)
    with pytest.raises(ValueError):
        text.batchify(ids.reshape(1, -1), 2)


def test_split_train_valid():
    train, valid = text.split_train_valid("abcdefghijklmnopqrst", 0.1)
    assert (train, valid) == ("abcdefghijklmnopqr", "st")
    ids = np.arange(1000)
    train, valid = text.split_train_valid(ids)
    assert len(valid) == 50 and np.array_equal(np.concatenate([train, valid]), ids)
    for bad in [0, 1, 1.5]:
        with pytest.raises(ValueError):
            text.split_train_valid(ids, bad)
    with pytest.raises(ValueError):
        text.split_train_valid("ab", 0.1)                      # no character held out


def test_corpus_info():
    info = text.corpus_info("x.txt", "héllo")
    assert info == {"name": "x.txt", "chars": 5, "vocab_size": 4,
                    "sha256": hashlib.sha256("héllo".encode()).hexdigest()}


def _fake_stdlib(tmp_path):
    files = {"os.py": "import sys\n", "json/__init__.py": "x = 'é'\r\n",
             "test/test_os.py": "TEST\n", "json/tests/t.py": "TEST\n",
             "idlelib/idle_test/t.py": "TEST\n", "site-packages/pkg.py": "TEST\n",
             "a.py": "no newline", "notes.txt": "TEST\n"}
    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode())
    return tmp_path


def test_corpus_files_headers_and_folding(tmp_path):
    root = _fake_stdlib(tmp_path)
    s = text.python_corpus(str(root))
    assert s == ("# file: a.py\nno newline\n"
                 "# file: json/__init__.py\nx = '\ufffd'\ufffd\n"
                 "# file: os.py\nimport sys\n")
    assert "TEST" not in s
    assert [s[i:s.index("\n", i)] for i in text.file_starts(s)] == \
        ["# file: a.py", "# file: json/__init__.py", "# file: os.py"]


def test_corpus_missing_sources_suggests_text(tmp_path):
    (tmp_path / "os.pyc").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="--text"):
        text.python_corpus(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--text"):
        text.python_corpus(str(tmp_path / "missing"))


def test_python_corpus(corpus):
    assert isinstance(corpus, str) and len(corpus) > 10**6
    text.python_corpus.cache_clear()
    assert text.python_corpus() == corpus                      # the same when read again
    assert set(corpus) <= set(text.fold("".join(map(chr, range(128))))) | {"\ufffd"}
    assert len(set(corpus)) <= 98
    starts = text.file_starts(corpus)
    assert starts[0] == 0 and len(starts) > 100
    names = [corpus[i + len("# file: "):corpus.index("\n", i)] for i in starts]
    assert names == sorted(names) and "os.py" in names
    assert not any(part in {"test", "tests", "idle_test", "site-packages"}
                   for name in names for part in name.split("/"))
