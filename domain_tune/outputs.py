"""Writing outputs so that they are either complete or absent."""

import contextlib
import math
import os
import shutil
import tempfile

from domain_tune.errors import BadInputError


def finite_json(obj):
    """``obj`` with every NaN or infinite float replaced by ``None``, for strict JSON.

    ``json.dumps`` writes them as ``NaN``/``Infinity``, which JSON parsers other
    than Python's refuse (a correlation of constant predictions is NaN).
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def check_out(out, overwrite=False, kind="file", inputs=(), flag="--out"):
    """Refuse an ``--out`` that cannot be written, before any work is done.

    ``kind`` is what will be written there, ``"file"`` or ``"dir"``; ``flag``
    the option named in the messages.  Refused: one of the command's
    ``inputs`` or a folder holding one (``--overwrite`` would replace the data
    being read);
    the current folder or one that holds it (``--overwrite`` would delete it);
    an unexpanded ``~``; an existing one of the other kind; an existing
    ``out`` without ``overwrite``; a missing parent folder; a parent where no file can be created
    (read-only, permissions, a pseudo file system such as ``/proc``), found by
    creating and removing a probe file.
    """
    path = os.fspath(out)
    if not path.strip():
        raise BadInputError(f"{flag} is empty; name a new {'folder' if kind == 'dir' else 'file'}")
    if path.startswith("~"):
        raise BadInputError(f"{flag} {path}: '~' was not expanded; write the full path")
    full = os.path.realpath(path)
    here = os.path.realpath(os.getcwd())
    if full == here or here.startswith(full.rstrip(os.sep) + os.sep):
        raise BadInputError(
            f"{flag} {path} is the current folder or holds it; name a new folder or file"
        )
    if os.path.lexists(path):
        for given in inputs:
            if given is None or not os.path.exists(given):
                continue
            inside = os.path.realpath(given)
            if inside == full or inside.startswith(full.rstrip(os.sep) + os.sep):
                raise BadInputError(f"{flag} {path} {'is' if inside == full else 'holds'} the "
                                    f"input {given}; name another {'folder' if kind == 'dir' else 'file'}")
        if kind == "file" and os.path.isdir(path):
            raise BadInputError(f"{flag} {path} is a directory; name a file")
        if kind == "dir" and os.path.exists(path) and not os.path.isdir(path):
            raise BadInputError(f"{flag} {path} is a file; name a directory")
        if not overwrite:
            raise BadInputError(f"{flag} {path} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.lexists(parent):
        raise BadInputError(f"{flag} {path}: directory {parent} does not exist")
    if not os.path.isdir(parent):
        raise BadInputError(f"{flag} {path}: cannot write in {parent} (not a directory)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".domain-tune-probe-", dir=parent)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise BadInputError(f"{flag} {path}: cannot write in {parent} ({e.strerror})") from None
    name = os.path.basename(os.path.abspath(path))
    limit = _name_max(parent) - SUFFIX_ROOM
    if len(os.fsencode(name)) > limit:
        raise BadInputError(
            f"{flag}: the name {name[:20]}... is too long ({len(os.fsencode(name))} bytes; at most "
            f"{limit} in {parent}, where it is first written under a longer temporary name)")
    return path


# the longest suffix added to an --out name for its temporary siblings and side files
# (".tmp-old-XXXXXXXX", ".tmp-<pid>.png", ".partial", ".npy.json"), with room to spare
SUFFIX_ROOM = 24


def _name_max(folder):
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not reported (or not POSIX): the usual limit
        return 255


# extensions of formats that are not a CSV table (see check_table_out)
OTHER_FORMATS = (".jsonl", ".json", ".npy", ".npz", ".parquet", ".feather", ".pkl", ".pickle",
                 ".xlsx", ".xls", ".keras", ".h5", ".png", ".pdf")


def check_table_out(out, what, extensions=(".csv", ".tsv")):
    """Refuse an ``--out`` for a CSV table whose extension names another format
    (:data:`OTHER_FORMATS`: ``.jsonl``, ``.npy``, ...), where the file would be a CSV under a
    misleading name; other names (``pairs_hn``, ``pairs.v2``) are accepted."""
    path = os.fspath(out)
    extension = os.path.splitext(path)[1].lower()
    if extension in OTHER_FORMATS or (extension in (".csv", ".tsv") and extension not in extensions):
        names = " or ".join(f"*{e}" for e in extensions)
        raise BadInputError(f"--out {path}: {what} are written as a CSV table; name it {names}")
    return path


def temporary_name(path, suffix=""):
    """The name a file is written under before it becomes ``path``: beside it (the same file
    system, so the rename is atomic), named by the process (``OUT.tmp-PID``); ``suffix`` for
    writers that insist on an extension (``.npy``, ``.png``)."""
    return f"{os.fspath(path)}.tmp-{os.getpid()}{suffix}"


@contextlib.contextmanager
def atomic_file(path, suffix=""):
    """Write a file that appears complete or not at all::

        with atomic_file(out) as tmp:
            frame.to_csv(tmp)

    yields :func:`temporary_name`; when the block ends, the file there replaces ``path``
    (an existing one included), and on any error it is removed and ``path`` is left as it was.
    """
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, os.fspath(path))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_directory(out, overwrite, write):
    """Call ``write(tmp_dir)`` on a fresh directory beside ``out``, then move it to ``out``.

    ``out`` appears only when ``write`` returns; on any error the temporary
    directory is removed and an existing ``out`` is left as it was.  An
    existing ``out`` is refused unless ``overwrite``.
    """
    out = os.path.abspath(check_out(out, overwrite, kind="dir"))
    parent = os.path.dirname(out)
    tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(out)}.tmp-", dir=parent)
    old = None
    try:
        write(tmp)
        if os.path.lexists(out):
            old = tempfile.mkdtemp(prefix=f"{os.path.basename(out)}.tmp-old-", dir=parent)
            os.replace(out, os.path.join(old, "previous"))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(out):  # put the previous output back
            os.replace(os.path.join(old, "previous"), out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
