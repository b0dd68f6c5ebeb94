"""Writing the command lines' files: atomically, JSON one way, a failed write in one line.

Every file npylstm writes goes through ``atomic_write``: into a temporary file in
the same folder, then ``os.replace``d over the target, so a crash or a full disk
never leaves half a file where a whole one was expected. An ``OSError`` raised
here names the target, never the temporary file, so ``cannot_write`` can report it.

    try:
        write_json(os.path.join(out, "metrics.json"), metrics)
    except OSError as err:
        return cannot_write(PROG, err)      # "PROG: error: cannot write PATH: reason", status 1
"""
import json
import os
import tempfile

from .argtypes import fail

JSON_INDENT = 2          # every JSON document npylstm writes for people to read


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary binary file next to ``path``, then move it onto ``path``.

    Raises OSError with ``filename == path`` when the folder cannot take the file."""
    path = os.fspath(path)
    tmp = None
    try:
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)           # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        # OSError(errno, ...) builds the matching subclass (PermissionError, ...).
        raise OSError(err.errno, err.strerror or str(err), path) from err
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp):
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path, obj):
    """Write ``obj`` as JSON (indent JSON_INDENT, a final newline) to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=JSON_INDENT) + "\n")


def make_folder(path):
    """``os.makedirs(path, exist_ok=True)``; an OSError names ``path``."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), os.fspath(path)) from err


def cannot_write(prog, err):
    """Print ``PROG: error: cannot write PATH: reason`` on stderr; return the exit status 1.

    ``err`` is the OSError of a failed write (its ``filename`` is the PATH)."""
    path = err.filename if err.filename is not None else "the output"
    return fail(prog, f"cannot write {os.fspath(path)}: {err.strerror or err}")
