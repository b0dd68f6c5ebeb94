"""The helpers the command lines share: argtypes (arguments) and files (writing, errors)."""
import argparse
import json
import os

import pytest

from npylstm.argtypes import DTYPES, at_least, fail, positive_float, probability
from npylstm.files import atomic_write, cannot_write, make_folder, write_json


def test_write_json_is_indented_and_ends_with_a_newline(tmp_path):
    write_json(tmp_path / "a.json", {"b": [1, 2.5], "c": None})
    text = (tmp_path / "a.json").read_text()
    assert text == '{\n  "b": [\n    1,\n    2.5\n  ],\n  "c": null\n}\n'
    assert json.loads(text) == {"b": [1, 2.5], "c": None}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    write_json(tmp_path / "a.json", {"old": 1})

    def half(f):
        f.write(b'{"new"')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "a.json", half)
    assert err.value.filename == str(tmp_path / "a.json")          # the target, not the temp file
    assert err.value.strerror == "No space left on device"
    assert os.listdir(tmp_path) == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"old": 1}


def test_a_non_os_error_is_passed_on_and_leaves_no_temporary(tmp_path):
    def broken(f):
        raise KeyError("x")

    with pytest.raises(KeyError):
        atomic_write(tmp_path / "a.bin", broken)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, reason", [
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "a.json", "Not a directory"),
    (lambda tmp: (tmp / "a.json").mkdir() or tmp / "a.json", "Is a directory"),
])
def test_errors_name_the_target_and_cannot_write_prints_one_line(make, reason, tmp_path, capsys):
    target = make(tmp_path)
    with pytest.raises(OSError) as err:
        write_json(target, {})
    assert cannot_write("prog", err.value) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"prog: error: cannot write {target}: {reason}\n"


def test_make_folder_names_the_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    make_folder(tmp_path / "new" / "deeper")
    assert (tmp_path / "new" / "deeper").is_dir()
    with pytest.raises(OSError) as err:
        make_folder(tmp_path / "file" / "sub")
    assert err.value.filename == str(tmp_path / "file" / "sub")


def test_fail_prints_one_line_and_returns_1(capsys):
    assert fail("python -m x", "checkpoint 'm.npz': is empty") == 1
    assert capsys.readouterr().err == "python -m x: error: checkpoint 'm.npz': is empty\n"


@pytest.mark.parametrize("parse, text, value", [
    (at_least(1), "3", 3), (at_least(0), "0", 0),
    (positive_float, "1e-3", 1e-3),
    (probability, "0", 0.0), (probability, "0.5", 0.5),
])
def test_argument_types_accept(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize("parse, text, message", [
    (at_least(1), "0", "must be >= 1, got 0"),
    (at_least(1), "1.5", "expected an integer, got '1.5'"),
    (positive_float, "0", "must be a finite number > 0"),
    (positive_float, "inf", "must be a finite number > 0"),
    (positive_float, "nan", "must be a finite number > 0"),
    (positive_float, "x", "expected a number, got 'x'"),
    (probability, "1", "must be in [0, 1), got 1"),
    (probability, "-0.1", "must be in [0, 1)"),
    (probability, "nan", "must be in [0, 1)"),
])
def test_argument_types_refuse_with_a_message(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse(text)


def test_dtypes():
    assert DTYPES == ("float32", "float64")
