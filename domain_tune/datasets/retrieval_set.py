"""Reading a retrieval benchmark: queries with their correct ids, and a corpus of labels with ids.

The files are the ``heldout_queries.csv`` (``query,<id>``) and ``corpus.csv``
(``label,<id>``) of a pairs folder, or any CSVs with those columns.
"""

import dataclasses

import numpy as np

from domain_tune.datasets.files import read_csv_columns
from domain_tune.datasets.taxonomy import ESCO_COLUMNS
from domain_tune.errors import BadInputError

QUERY_COLUMN = "query"
LABEL_COLUMN = "label"


@dataclasses.dataclass
class RetrievalSet:
    """Queries with their correct ids, and a corpus of labels with ids."""

    queries: list
    query_ids: list
    corpus_labels: list
    corpus_ids: list


def find_id_column(queries_path, corpus_path, query_column=QUERY_COLUMN, label_column=LABEL_COLUMN,
                   what="queries"):
    """The id column of a queries and a corpus file when none is named: ``conceptUri`` (ESCO)
    where both files have it, else the column beside the text in both (a pairs folder's
    ``query,<id>`` and ``label,<id>``: ``pairs taxonomy`` names it as the taxonomy does)."""
    from domain_tune.datasets.files import check_text_file, read_csv

    files = ((queries_path, what), (corpus_path, "corpus"))
    for path, name in files:
        check_text_file(path, name)
    headers = [[str(h).strip() for h in read_csv(p, name, nrows=0).columns] for p, name in files]
    default = ESCO_COLUMNS["id_column"]
    if all(default in h for h in headers):
        return default
    others = [[c for c in h if c != text] for h, text in zip(headers, (query_column, label_column))]
    if all(len(o) == 1 for o in others) and others[0] == others[1]:
        return others[0][0]
    raise BadInputError(
        f"{what} {queries_path} (columns: {', '.join(headers[0])}) and corpus {corpus_path} "
        f"(columns: {', '.join(headers[1])}) share no id column; name it with --id-column")


def read_retrieval_set(
    queries_path, corpus_path, query_column=QUERY_COLUMN, id_column=None,
    label_column=LABEL_COLUMN, limit=None, what="queries",
):
    """Read a queries CSV (``query,<id>``) and a corpus CSV (``label,<id>``).

    ``what`` names the queries file in errors (``"--tune-on queries"``); ``id_column``
    None finds it (:func:`find_id_column`).

    A query may appear on several rows (several correct ids); a corpus id may
    have several labels.  ``limit`` keeps the first ``limit`` distinct queries.
    Every query's id must be in the corpus.
    """
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be at least 1 (got {limit})")
    if id_column is None:
        id_column = find_id_column(queries_path, corpus_path, query_column, label_column, what)
    q = read_csv_columns(queries_path, [query_column, id_column], what,
                         {query_column: "--query-column", id_column: "--id-column"})
    c = read_csv_columns(corpus_path, [label_column, id_column], "corpus",
                         {label_column: "--label-column", id_column: "--id-column"})
    for frame, path, name, text_col in ((q, queries_path, what, query_column),
                                        (c, corpus_path, "corpus", label_column)):
        for col in (text_col, id_column):
            empty = np.flatnonzero(frame[col].str.strip().eq("").to_numpy())
            if len(empty):
                raise BadInputError(
                    f"{name} {path}: row {empty[0] + 2} has an empty {col}"
                    + (f" ({len(empty)} rows in all)" if len(empty) > 1 else "")
                )
    queries, query_ids = q[query_column].tolist(), q[id_column].str.strip().tolist()
    rows = list(range(len(queries)))
    if limit is not None:
        keep = set(list(dict.fromkeys(queries))[:limit])
        rows = [k for k in rows if queries[k] in keep]
        queries, query_ids = [queries[k] for k in rows], [query_ids[k] for k in rows]
    corpus_ids = c[id_column].str.strip().tolist()
    known = set(corpus_ids)
    missing = [k for k, cid in enumerate(query_ids) if cid not in known]
    if missing:
        raise BadInputError(
            f"{what} {queries_path}: {len(missing)} {'row has' if len(missing) == 1 else 'rows have'} "
            f"{'an' if id_column[:1].lower() in 'aeiou' else 'a'} {id_column} that is not in corpus "
            f"{corpus_path} (first: row {rows[missing[0]] + 2}, {query_ids[missing[0]]!r})"
        )
    if len(known) < 2:  # every query would find its id first: accuracy 1.0, measuring nothing
        raise BadInputError(f"corpus {corpus_path} has {len(known)} distinct {id_column}; ranking "
                            "needs at least 2")
    return RetrievalSet(queries, query_ids, c[label_column].tolist(), corpus_ids)
