"""Checks shared by every reader: the file exists, is a file, is UTF-8 text;
and one CSV reader (delimiter sniffed, one-line errors) for pairs, taxonomies,
queries, corpora and text columns."""

import codecs
import csv
import os
import warnings

import pandas as pd

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
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # as spreadsheets save "Unicode text"
        raise BadInputError(f"{what} {path} is UTF-16 text; re-save it as UTF-8")
    if b"\x00" in head:
        raise BadInputError(f"{what} {path} is a binary file, not UTF-8 text")
    return path


def utf8_error(path, exc):
    """A one-line BadInputError for a UnicodeDecodeError while reading ``path``.

    The error's own offset counts from the start of whatever block was being
    decoded, so the file is scanned again for the line and byte offset of its
    first byte that is not UTF-8.
    """
    where = first_non_utf8(path)
    at = f" (line {where[1]:,}, byte offset {where[0]:,})" if where else ""
    return BadInputError(f"{path} is not valid UTF-8{at}; re-save it as UTF-8")


def first_non_utf8(path, block=1 << 20):
    """``(byte offset, line number)`` of the first byte of ``path`` that is not UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0  # bytes and newlines of the blocks decoded so far
    try:
        with open(path, "rb") as f:
            while True:
                data = f.read(block)
                pending = decoder.getstate()[0]  # an incomplete character (never a newline)
                try:
                    decoder.decode(data, final=not data)
                except UnicodeDecodeError as e:
                    bad = offset - len(pending) + e.start
                    return bad, lines + (pending + data)[: e.start].count(b"\n") + 1
                if not data:
                    return None
                offset += len(data)
                lines += data.count(b"\n")
    except OSError:
        return None


DELIMITERS = (",", "\t", ";")


def delimiter(path):
    """The field delimiter of a CSV: tab for ``.tsv``; else the one that splits its header best.

    Each of comma, tab and semicolon (as spreadsheets in many locales write
    CSV) splits the header line as a CSV reader would (quotes respected); the
    one giving the most fields wins.  A tie is settled by :class:`csv.Sniffer`
    on the first lines, then in favour of the comma.
    """
    if os.fspath(path).lower().endswith(".tsv"):
        return "\t"
    with open(path, "rb") as f:
        sample = f.read(_SNIFF).decode("utf-8-sig", errors="replace")
    lines = sample.splitlines()[:20] or [""]
    fields = {d: len(next(csv.reader([lines[0]], delimiter=d), [])) for d in DELIMITERS}
    most = max(fields.values())
    tied = [d for d in DELIMITERS if fields[d] == most]
    if len(tied) == 1:
        return tied[0]
    if most > 1:
        try:
            return csv.Sniffer().sniff("\n".join(lines), delimiters="".join(tied)).delimiter
        except csv.Error:
            pass
    return tied[0]  # DELIMITERS starts with the comma


def long_row(path, sep):
    """1-based line number and field count of the first row longer than the header."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = csv.reader(f, delimiter=sep)
            width = len(next(rows, []))
            for row in rows:
                if len(row) > width:
                    return rows.line_num, len(row), width
    except (UnicodeDecodeError, csv.Error):
        pass
    return None


def _check_header(path, what, sep):
    """Refuse a header that names a column twice (pandas would rename one ``name.1``)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=sep), [])
    except (UnicodeDecodeError, csv.Error):
        return  # left to the parser's own error
    seen = set()
    for name in (h.strip() for h in header):
        if name and name in seen:
            raise BadInputError(f"{what} {path}: the header names the column {name!r} twice")
        seen.add(name)


def parse_error(path, what, sep, exc):
    """A one-line BadInputError for a CSV that pandas could not parse."""
    long = long_row(path, sep)
    if long:
        line, n, width = long
        return BadInputError(
            f"{what} {path}: line {line} has {n} fields but the header has {width}; "
            "quote texts that contain the delimiter"
        )
    reason = str(exc).splitlines()[0] if exc is not None and str(exc) else "malformed"
    return BadInputError(f"{what} {path}: not a readable CSV ({reason})")


def read_csv(path, what="file", **kwargs):
    """Read a validated CSV as strings (empty cells as ``""``), its delimiter sniffed, the
    spaces around the header's names removed.

    Every failure is a one-line :class:`BadInputError`: not UTF-8, not parseable,
    or a row with more fields than the header (which pandas would otherwise
    read by shifting that row's fields onto an index).
    """
    sep = delimiter(path)
    _check_header(path, what, sep)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8",
                                index_col=False, **kwargs)
    except UnicodeDecodeError as e:
        raise utf8_error(path, e) from e
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        raise parse_error(path, what, sep, e) from e
    except pd.errors.EmptyDataError as e:
        raise BadInputError(f"{what} {path} is empty") from e
    return strip_header(frame)


def strip_header(frame):
    """``frame`` with the spaces around its column names removed: a header typed as
    ``base, ref, similarity`` names the columns ``ref`` and ``similarity``."""
    frame.columns = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    return frame


def read_csv_columns(path, columns, what="file", options=None):
    """Read ``columns`` of a CSV as strings (empty cells as ``""``), validating the file.

    ``options`` maps a column to the option that named it, for the messages.
    Raises :class:`BadInputError` for a missing, empty or non-UTF-8 file, a
    missing column or a file with a header and no rows.
    """
    path = check_text_file(path, what)
    options = options or {}
    frame = read_csv(path, what)
    header = [str(c) for c in frame.columns]
    for column in columns:
        if column not in header:
            via = f" ({options[column]})" if column in options else ""
            raise BadInputError(
                f"{what} {path} has no column {column!r}{via} (columns: {', '.join(header)})"
            )
    if len(frame) == 0:
        raise BadInputError(f"{what} {path} has a header but no rows")
    return frame[list(dict.fromkeys(columns))]
