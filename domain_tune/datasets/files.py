"""Checks shared by every reader: the file exists, is a file, is UTF-8 text."""

import os

from domain_tune.errors import BadInputError

_SNIFF = 1 << 16


def check_text_file(path, what="file"):
    """Raise :class:`BadInputError` unless ``path`` is a readable, non-empty UTF-8 text file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BadInputError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise BadInputError(f"{what} {path} is a directory, not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
    except OSError as e:
        raise BadInputError(f"cannot read {what} {path}: {e.strerror}") from e
    if not head.strip():
        raise BadInputError(f"{what} {path} is empty")
    if b"\x00" in head:
        raise BadInputError(f"{what} {path} is a binary file, not UTF-8 text")
    return path


def utf8_error(path, exc):
    """A one-line BadInputError for a UnicodeDecodeError while reading ``path``."""
    return BadInputError(
        f"{path} is not valid UTF-8 (byte offset {exc.start}); re-save it as UTF-8"
    )
