"""A corpus to match against: its texts, ids and descriptions read from a text file or a
CSV column, and which entries are blank (never returned)."""

import os
import warnings

import numpy as np

from domain_tune.errors import BadInputError, DomainTuneWarning


class MatchWarning(DomainTuneWarning):
    """Input matched, but not all of it as given (blank texts)."""


def blank_mask(corpus_texts):
    blank = np.array([not str(t).strip() for t in corpus_texts], dtype=bool)
    if blank.all():
        raise BadInputError("the corpus holds no non-blank texts")
    if blank.any():
        n = int(blank.sum())
        warnings.warn(f"{n} blank corpus text{'' if n == 1 else 's'} left out of the matches",
                      MatchWarning, stacklevel=3)
    return blank if blank.any() else None


def text_column(path, column, option, what):
    """The column of ``path`` to read (None for a plain text file); checks it exists."""
    from domain_tune.datasets.files import check_text_file, read_csv
    from domain_tune.datasets.texts import is_csv, only_column

    check_text_file(path, what)
    if not is_csv(path, column):
        return None
    header = [str(h) for h in read_csv(path, what, nrows=0).columns]
    if column is None:
        if only_column(header) is None:
            raise BadInputError(f"{what} {path} has {len(header)} columns; choose one with {option}")
        return only_column(header)
    if column not in header:
        raise BadInputError(f"{what} {path} has no column {column!r} (columns: {', '.join(header)})")
    return column


def read_corpus(path, column=None, id_column=None):
    """Texts and ids of a corpus: a text file (ids: line numbers) or a CSV column.

    In a CSV the ids come from ``id_column``, else the row number (the header
    is row 1); a pairs folder's ``corpus.csv`` (``label,<id>``) gives its labels and ids
    without either column named.
    """
    from domain_tune.datasets.files import read_csv
    from domain_tune.datasets.texts import folder_columns, text_chunks

    path = os.fspath(path)
    if id_column is not None and column is None and not path.lower().endswith((".csv", ".tsv")):
        raise BadInputError(f"--id-column {id_column}: corpus {path} is not a CSV")
    chosen = column
    column = text_column(path, column, "--corpus-column", "corpus")
    if chosen is None and id_column is None and column is not None:
        folder = folder_columns(read_csv(path, "corpus", nrows=0).columns)
        if folder and folder[0] == column:  # a pairs folder's corpus.csv: label,<id>
            id_column = folder[1]
    texts = [t for chunk in text_chunks(path, column, what="corpus") for t in chunk]
    if not texts:
        raise BadInputError(f"corpus {path} holds no texts")
    if column is None:
        return texts, list(range(1, len(texts) + 1))
    if id_column is None:
        return texts, list(range(2, len(texts) + 2))
    frame = read_csv(path, "corpus", usecols=lambda c: c.strip() == id_column)
    if id_column not in frame.columns:
        header = ", ".join(map(str, read_csv(path, "corpus", nrows=0).columns))
        raise BadInputError(f"corpus {path} has no column {id_column!r} (columns: {header})")
    ids = frame[id_column].str.strip().tolist()
    empty = [i for i, value in enumerate(ids) if not value]
    if empty:  # a match without an id could not be told apart from another
        raise BadInputError(f"corpus {path}: row {empty[0] + 2} has an empty {id_column}"
                            + (f" ({len(empty):,} rows do)" if len(empty) > 1 else ""))
    if len(ids) != len(texts):  # pragma: no cover - both read the same rows
        raise RuntimeError(f"corpus {path}: {len(ids)} ids for {len(texts)} texts")
    return texts, ids


def read_descriptions(path, column, n):
    """The ``column`` of corpus CSV ``path`` (one cell per corpus text, ``""`` where empty),
    checked to hold ``n`` rows like the corpus texts read by :func:`read_corpus`."""
    from domain_tune.datasets.files import read_csv

    path = os.fspath(path)
    if not path.lower().endswith((".csv", ".tsv")):
        raise BadInputError(f"--description-column {column}: corpus {path} is not a CSV")
    frame = read_csv(path, "corpus", usecols=lambda c: c.strip() == column)
    if column not in frame.columns:
        header = ", ".join(map(str, read_csv(path, "corpus", nrows=0).columns))
        raise BadInputError(f"corpus {path} has no column {column!r} (columns: {header})")
    descriptions = frame[column].tolist()
    if len(descriptions) != n:  # pragma: no cover - both read the same rows
        raise RuntimeError(f"corpus {path}: {len(descriptions)} descriptions for {n} texts")
    return descriptions
