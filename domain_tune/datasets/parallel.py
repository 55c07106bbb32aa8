"""Parallel sentences: a CSV with a header, a source column and a translation column.

The first two columns are read unless ``columns`` names others; the delimiter
is sniffed as for every CSV input (:func:`domain_tune.datasets.files.read_csv`).
Every problem is a one-line :class:`BadInputError` naming the file: a missing
column, an empty cell (a sentence without its translation would shift the
alignment), a file without rows.
"""

import dataclasses

import numpy as np

from domain_tune.datasets.files import check_text_file, read_csv
from domain_tune.errors import BadInputError


@dataclasses.dataclass
class ParallelSentences:
    source: list
    translation: list
    columns: tuple
    path: str = ""

    def __len__(self):
        return len(self.source)

    def head(self, n):
        return ParallelSentences(self.source[:n], self.translation[:n], self.columns, self.path)


def parse_columns(value):
    """``"en,de"`` -> ``("en", "de")``; ``None`` stays ``None`` (the first two columns)."""
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else tuple(value)
    if len(names) != 2 or not all(names):
        raise BadInputError(f"columns {value!r}: give two column names separated by a comma, e.g. en,de")
    if names[0] == names[1]:
        raise BadInputError(f"columns {value!r}: the source and translation columns must differ")
    return names


def read_parallel(path, columns=None, what="parallel file"):
    """Read a parallel-sentence CSV; returns :class:`ParallelSentences`."""
    check_text_file(path, what)
    columns = parse_columns(columns)
    frame = read_csv(path, what)
    if columns is None:
        if frame.shape[1] < 2:
            raise BadInputError(f"{what} {path} has {frame.shape[1]} column; it needs a source and "
                                "a translation column")
        columns = tuple(frame.columns[:2])
    for name in columns:
        if name not in frame.columns:
            raise BadInputError(f"{what} {path} has no column {name!r} (columns: "
                                f"{', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise BadInputError(f"{what} {path} holds no sentences, only a header")
    src, tgt = frame[columns[0]].tolist(), frame[columns[1]].tolist()
    blank = np.flatnonzero([not s.strip() or not t.strip() for s, t in zip(src, tgt)])
    if len(blank):
        rows = ", ".join(str(i + 2) for i in blank[:5]) + (f" and {len(blank) - 5} more"
                                                          if len(blank) > 5 else "")
        raise BadInputError(f"{what} {path}: empty text in {'row' if len(blank) == 1 else 'rows'} "
                            f"{rows} (the header is row 1)")
    return ParallelSentences(src, tgt, columns, str(path))
