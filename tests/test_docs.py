"""The documentation runs: every ```python block of README.md and docs/*.md.

Each block is one test, named after its file, its number in the file and its
first line (``docs/parity.md-block2-L57``), so a failure says which snippet
broke. The blocks of one file run in order in one namespace, as a reader
pasting them into one Python session would run them; a block that is not
meant to run is written as ```text (or any other language).

The snippets run in a temporary directory, so files they write go there.
Any doc added later is picked up without touching this file.

A second test checks that every code reference of the form
`npylstm/path.py: name` in the docs names a function or class that exists.
"""
import re
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


def doc_files():
    return [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.exists()]


def python_blocks(path):
    """[(first line number, source)] of the ```python fenced blocks of a Markdown file."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    k = 0
    while k < len(lines):
        match = FENCE.match(lines[k])
        if not match:
            k += 1
            continue
        fence, info = match["fence"], match["info"].strip().split()
        language = info[0].lower() if info else ""
        body, start, k = [], k + 2, k + 1
        while k < len(lines) and not (lines[k].strip().startswith(fence)
                                      and lines[k].strip().strip(fence[0]) == ""):
            body.append(lines[k])
            k += 1
        k += 1                                          # the closing fence
        if language in ("python", "py", "python3"):
            indent = len(match["indent"])
            blocks.append((start, "\n".join(line[indent:] if line[:indent].isspace() else line
                                            for line in body)))
    return blocks


def _cases():
    cases = []
    for path in doc_files():
        rel = path.relative_to(ROOT).as_posix()
        for number, (line, _) in enumerate(python_blocks(path), 1):
            cases.append(pytest.param(path, number, id=f"{rel}-block{number}-L{line}"))
    return cases


_namespaces = {}                                         # (path, number) -> namespace after it


def _run_through(path, number, workdir, monkeypatch):
    """The namespace after running blocks 1..number of path, each at most once."""
    key = (path, number)
    if key in _namespaces:
        return _namespaces[key]
    namespace = dict(_run_through(path, number - 1, workdir, monkeypatch)) if number > 1 else {
        "__name__": "__docs__"}
    line, source = python_blocks(path)[number - 1]
    rel = path.relative_to(ROOT).as_posix()
    code = compile("\n" * (line - 1) + source, f"{rel}", "exec")   # tracebacks show the .md line
    monkeypatch.chdir(workdir)
    try:
        exec(code, namespace)
    except BaseException as error:
        _namespaces[key] = error
        raise
    _namespaces[key] = namespace
    return namespace


def _where(error):
    """file:line of the innermost frame of a failed block that is in a .md file."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".md")]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


@pytest.mark.reference                   # the blocks import torch, keras, onnx
@pytest.mark.parametrize("path, number", _cases())
def test_python_block_runs(path, number, tmp_path_factory, monkeypatch):
    workdir = tmp_path_factory.getbasetemp() / ("docs-" + path.stem)
    workdir.mkdir(exist_ok=True)
    for earlier in range(1, number):
        result = _namespaces.get((path, earlier))
        if isinstance(result, BaseException):
            pytest.fail(f"block {earlier} of {path.name}, which this block builds on, failed "
                        f"({_where(result)}): {type(result).__name__}: {result}")
    _run_through(path, number, workdir, monkeypatch)


REFERENCE = re.compile(r"`(npylstm/[\w/]+\.py): (\w+)`")


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_references_exist(path):
    """`npylstm/functional/cell.py: lstm_cell_forward` must name a def or class in that file."""
    missing = []
    for file, name in REFERENCE.findall(path.read_text(encoding="utf-8")):
        source = ROOT / file
        if not source.exists():
            missing.append(f"{file}: no such file")
        elif not re.search(rf"^\s*(def|class) {name}\b", source.read_text(encoding="utf-8"), re.M):
            missing.append(f"{file}: no def or class {name}")
    assert not missing, f"{path.name} points at code that does not exist: {missing}"


def test_finds_the_docs():
    assert any(p.name == "README.md" for p in doc_files())
    assert python_blocks(ROOT / "README.md"), "README.md has a ```python block"


LINK = re.compile(r"\]\((?P<file>[\w./-]*?\.md)?(?:#(?P<anchor>[\w-]+))?\)")


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_between_docs_resolve(path):
    """[text](other.md#section) and [text](#section) point at a file and heading that exist."""
    broken = []
    for match in LINK.finditer(path.read_text(encoding="utf-8")):
        file, anchor = match["file"], match["anchor"]
        if not file and not anchor:
            continue
        target = (path.parent / file) if file else path
        if not target.exists():
            broken.append(f"{match[0]}: no file {file}")
        elif anchor and anchor not in anchors(target):
            broken.append(f"{match[0]}: no heading #{anchor} in {target.name}")
    assert not broken, f"{path.name} has broken links: {broken}"
