"""Texts to embed: one per line of a text file, or one column of a CSV.

Both readers stream in chunks so that memory does not grow with the file, and
both can count their texts up front (a cheap first pass) so that the output
can be pre-allocated and progress shown.
"""

import os
import re

import pandas as pd

from domain_tune.datasets.files import (
    check_text_file, delimiter, long_row, parse_error, read_csv, strip_header, utf8_error,
)
from domain_tune.errors import BadInputError

CHUNK = 8192


def is_csv(path, column):
    return column is not None or os.path.splitext(path)[1].lower() in (".csv", ".tsv")


def _read_lines(path, chunk):
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:  # (a BOM is not text)
            buf = []
            for number, line in enumerate(f, 1):
                if "\x00" in line:  # (check_text_file looks for them at the start only)
                    raise _nul_error(path, "line", number)
                buf.append(line.rstrip("\n"))
                if len(buf) >= chunk:
                    yield buf
                    buf = []
            if buf:
                yield buf
    except UnicodeDecodeError as e:
        raise utf8_error(path, e) from e


def _nul_error(path, unit, number):
    return BadInputError(f"{path}: {unit} {number:,} holds a NUL byte; a binary file, not UTF-8 text")


# The text column of a pairs folder's files (``domain-tune pairs``): ``query,<id>`` and
# ``label,<id>``, the id column named as in the taxonomy (conceptUri for ESCO, id for
# ``pairs taxonomy``'s default).
FOLDER_TEXT_COLUMNS = ("query", "label")


def folder_columns(header):
    """``(text column, id column)`` of a pairs folder's file (``query,<id>`` or
    ``label,<id>``), or None for any other header."""
    header = [str(h) for h in header]
    if len(header) == 2 and header[0] in FOLDER_TEXT_COLUMNS and header[1] not in FOLDER_TEXT_COLUMNS:
        return header[0], header[1]
    return None


def only_column(header):
    """The text column of a CSV when no column is named: its only column, or the one beside a
    leading unnamed index column (as pandas' ``to_csv`` writes by default); else None."""
    header = [str(h) for h in header]
    if len(header) == 2 and re.fullmatch(r"Unnamed: 0", header[0]):
        return header[1]
    if len(header) == 1:
        return header[0]
    folder = folder_columns(header)
    return folder[0] if folder else None


def _csv_reader(path, column, chunk, what):
    header = read_csv(path, "input", nrows=0).columns
    if column is None:
        column = only_column(header)
        if column is None:
            raise BadInputError(
                f"{path} has {len(header)} columns; choose one with --column" if what == "input"
                else f"{what} {path} has {len(header)} columns; give one text per line, or a CSV "
                "of one column")
    if column not in header:
        raise BadInputError(
            f"{path} has no column {column!r} (columns: {', '.join(map(str, header))})"
        )
    sep = delimiter(path)
    if long_row(path, sep):  # a text split by an unquoted delimiter must fail, not be cut
        raise parse_error(path, "input", sep, None)
    try:
        reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=chunk,
                             encoding="utf-8", index_col=False)
        row = 2  # the spreadsheet row of the frame's first line (the header is row 1)
        for frame in reader:
            texts = strip_header(frame)[column].tolist()
            nul = next((i for i, t in enumerate(texts) if "\x00" in t), None)
            if nul is not None:
                raise _nul_error(path, "row", row + nul)
            row += len(texts)
            yield texts
    except UnicodeDecodeError as e:
        raise utf8_error(path, e) from e
    except pd.errors.ParserError as e:
        raise parse_error(path, "input", sep, e) from e


def text_chunks(path, column=None, chunk=CHUNK, what="input"):
    """Yield lists of texts from ``path``; validates the file first (``what`` names it in errors)."""
    check_text_file(path, what)
    if is_csv(path, column):
        return _csv_reader(path, column, chunk, what)
    return _read_lines(path, chunk)


def count_texts(path, column=None, what="input"):
    """Number of texts :func:`text_chunks` will yield (raises on bad input)."""
    n = sum(len(c) for c in text_chunks(path, column, what=what))
    if n == 0:
        raise BadInputError(f"{what} {path} holds no texts")
    return n
