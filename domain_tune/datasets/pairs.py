"""Scored text pairs (``base,ref,similarity``): read, validate, split.

An optional ``negative`` column gives a *hard negative* for a positive pair:
a text that looks like ``ref`` but must rank below it for ``base`` (for
instance another concept's label that the base model confuses with it; see
:mod:`domain_tune.datasets.mining`).  Further columns ``negative_2``,
``negative_3``, ... give more of them.  The in-batch losses add every
negative of a batch to its candidates; an empty cell means none.  The score losses
(``mse``, ``cosent``) ignore the column.

Scores are targets for angular similarity and must lie in [0, 1], or in the
range given by ``score_range`` (for instance STS-style 0-5), which is then
rescaled linearly to [0, 1].  Every problem is a :class:`BadInputError`
naming the file, the column and the first offending rows.
"""

import dataclasses
import hashlib
import re
import warnings

import numpy as np
import pandas as pd

from domain_tune.datasets.files import check_text_file, delimiter, read_csv
from domain_tune.errors import BadInputError, DomainTuneWarning

DEFAULT_TEXT_COLUMNS = ("base", "ref")
DEFAULT_SCORE_COLUMN = "similarity"
NEGATIVE_COLUMN = "negative"
LONG_TEXT_CHARS = 2000
_MORE_NEGATIVES = re.compile(r"negative_([2-9]|[1-9][0-9]+)")


def negative_column_name(k):
    """The column of the ``k``-th hard negative (0-based): negative, negative_2, ..."""
    return NEGATIVE_COLUMN if k == 0 else f"{NEGATIVE_COLUMN}_{k + 1}"


def negative_columns(names):
    """The hard-negative columns among ``names``, in order: negative, negative_2, ..."""
    more = sorted((int(m.group(1)), name) for name in names
                  if (m := _MORE_NEGATIVES.fullmatch(str(name))))
    return ([NEGATIVE_COLUMN] if NEGATIVE_COLUMN in names else []) + [name for _, name in more]


@dataclasses.dataclass
class Pairs:
    base: list
    ref: list
    similarity: np.ndarray
    path: str = ""
    negative: list = None  # a hard negative per pair ("" for none), or None
    more_negatives: list = None  # columns negative_2, ...: lists like ``negative``

    def __len__(self):
        return len(self.similarity)

    def negatives(self):
        """``{"negative": [...], "negative_2": [...], ...}`` (empty without negatives)."""
        if self.negative is None:
            return {}
        columns = [self.negative, *(self.more_negatives or [])]
        return {negative_column_name(k): c for k, c in enumerate(columns)}

    def drop_negatives(self):
        self.negative, self.more_negatives = None, None

    def take(self, idx):
        def pick(column):
            return [column[i] for i in idx]

        negative = None if self.negative is None else pick(self.negative)
        more = None if self.more_negatives is None else [pick(c) for c in self.more_negatives]
        return Pairs(pick(self.base), pick(self.ref), self.similarity[idx], self.path, negative,
                     more)


class PairsWarning(DomainTuneWarning):
    """Accepted but suspicious input (duplicates, very long texts)."""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _rows(mask, limit=5, numbers=None):
    """``"row 2"`` or ``"rows 2, 5, 9"``: rows counted as a spreadsheet does (the header is row 1).

    ``numbers`` maps the frame's rows to the file's (blank lines, which the reader skips, are
    rows of a spreadsheet); without it the frame's rows follow the header one after another.
    """
    rows = np.flatnonzero(mask)
    rows = (rows + 2 if numbers is None else np.asarray(numbers)[rows]).tolist()
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows[:limit])) + more


def filled_rows(frame):
    """Rows of ``frame`` (read as strings) with at least one non-blank cell."""
    return frame.apply(lambda c: c.str.strip() != "").any(axis=1).to_numpy()


def spreadsheet_rows(path, sep):
    """The row number, as a spreadsheet shows it, of each non-blank record after the header
    (a blank line is a row there; a quoted text spanning lines is one row); None if unreadable."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            records = csv.reader(f, delimiter=sep)
            next(records, None)
            return np.array([k for k, record in enumerate(records, start=2) if record], dtype=int)
    except (UnicodeDecodeError, csv.Error):
        return None


def read_pairs(path, text_columns=DEFAULT_TEXT_COLUMNS, score_column=DEFAULT_SCORE_COLUMN,
               score_range=(0.0, 1.0)):
    """Read and validate a CSV of scored pairs; returns :class:`Pairs`."""
    check_text_file(path, "pairs file")
    lo, hi = map(float, score_range)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise BadInputError(f"--score-range {lo:g} {hi:g}: both bounds must be finite numbers")
    if not hi > lo:
        raise BadInputError(f"--score-range {lo:g} {hi:g}: the upper bound must exceed the lower")
    if len(text_columns) != 2:
        raise BadInputError("--text-columns needs exactly two column names, e.g. base,ref")
    if text_columns[0] == text_columns[1]:
        raise BadInputError(f"--text-columns names {text_columns[0]!r} twice; a pair needs two columns")
    if score_column in text_columns:
        raise BadInputError(f"--score-column {score_column!r} is also a text column")
    frame = read_csv(path, "pairs file")
    wanted = list(text_columns) + [score_column]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"{path} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, frame.columns))}); see --text-columns / --score-column"
        )
    numbers = spreadsheet_rows(path, delimiter(path))
    if numbers is not None and len(numbers) == len(frame):
        # a row of empty cells (',,' as spreadsheets export emptied rows) is a blank line
        filled = filled_rows(frame)
        frame, numbers = frame[filled].reset_index(drop=True), numbers[filled]
    else:  # pragma: no cover - the csv module and pandas count the rows alike
        numbers = None
    if frame.empty:
        raise BadInputError(f"{path} has a header but no pairs")
    a, b = (frame[c].astype(str) for c in text_columns)
    empty = (a.str.strip() == "") | (b.str.strip() == "")
    if empty.any():
        raise BadInputError(f"{path}: empty text in {_rows(empty.values, numbers=numbers)}")
    raw = frame[score_column].str.strip()
    if delimiter(path) != ",":  # spreadsheets that separate with ';' write decimal commas
        raw = raw.str.replace(",", ".", regex=False)
    scores = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(scores)
    if bad.any():
        first = frame[score_column].iloc[int(np.flatnonzero(bad)[0])]
        raise BadInputError(
            f"{path}: column {score_column!r} is not a finite number in {_rows(bad, numbers=numbers)} "
            f"(first: {repr(first) if first.strip() else 'an empty cell'})"
        )
    out = (scores < lo) | (scores > hi)
    if out.any():
        raise BadInputError(
            f"{path}: {score_column!r} outside [{lo:g}, {hi:g}] in {_rows(out, numbers=numbers)}"
            + ("; use --score-range LO HI for other scales" if (lo, hi) == (0.0, 1.0) else "")
        )
    scores = (scores - lo) / (hi - lo)
    dup = pd.DataFrame({"a": a, "b": b}).duplicated().to_numpy()
    if dup.any():
        n_dup = int(dup.sum())
        warnings.warn(f"{path}: {n_dup} duplicate pair{'' if n_dup == 1 else 's'} ({_rows(dup, numbers=numbers)}); kept",
                      PairsWarning, stacklevel=2)
    long = (a.str.len() > LONG_TEXT_CHARS) | (b.str.len() > LONG_TEXT_CHARS)
    if long.any():
        warnings.warn(
            f"{path}: {int(long.sum())} text{'' if int(long.sum()) == 1 else 's'} longer than "
            f"{LONG_TEXT_CHARS} characters "
            f"({_rows(long.values, numbers=numbers)}); kept", PairsWarning, stacklevel=2,
        )
    columns = [c for c in negative_columns(list(frame.columns)) if c not in wanted]
    if columns and columns[0] != NEGATIVE_COLUMN:
        raise BadInputError(f"{path}: column {columns[0]!r} without a {NEGATIVE_COLUMN!r} column; "
                            f"the first hard negative goes in {NEGATIVE_COLUMN!r}")
    negatives = [frame[c].astype(str).str.strip() for c in columns]
    negatives = [n.tolist() for n in negatives if (n != "").any()]
    negative, more = (negatives[0], negatives[1:] or None) if negatives else (None, None)
    return Pairs(a.tolist(), b.tolist(), scores.astype(np.float32), str(path), negative, more)


def split_pairs(pairs, validation_split, seed):
    """Shuffle with ``seed`` and hold out ``validation_split`` of the pairs."""
    if not 0.0 <= validation_split < 1.0:
        raise BadInputError(f"--validation-split {validation_split} must be in [0, 1)")
    n = len(pairs)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * validation_split))
    if validation_split > 0:
        n_val = max(1, n_val)
    if n - n_val < 1:
        raise BadInputError(f"{pairs.path}: {n} pair{' is' if n == 1 else 's are'} too few to hold "
                            "out a validation split; --validation-split 0 trains on all")
    return pairs.take(order[n_val:]), (pairs.take(order[:n_val]) if n_val else None)
