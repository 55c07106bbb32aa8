"""Parallel sentences (a source sentence and its translation): read, validate, build.

A parallel file is a CSV with a header and (at least) two text columns, the
source sentence and its translation; the first two columns unless
``columns=(SOURCE, TRANSLATION)`` names others.  Further columns (for instance
``language``) are ignored.  They feed alignment-preserving training
(:mod:`domain_tune.training.distillation`).

:func:`stsb_parallel` builds such a file from the machine-translated STS
benchmark (stsb-multi-mt: ``stsb-LANG-{train,dev}.csv``, row *i* of every
language the translation of row *i* of the English file): each English
sentence paired with its translation in every other language.  From the
*train* files it leaves out the rows of the held-out panel
(:func:`~domain_tune.datasets.stsb_multi.heldout_rows`) and every pair that
shares a sentence with them, in any language; :func:`drop_heldout` does the
same for any parallel file, so no alignment objective sees a sentence of the
panel that measures it.
"""

import dataclasses
import os
import warnings

import numpy as np
import pandas as pd

from domain_tune.datasets.files import check_text_file, read_csv
from domain_tune.errors import BadInputError, DomainTuneWarning

SOURCE_COLUMN, TRANSLATION_COLUMN, LANGUAGE_COLUMN = "source", "translation", "language"


@dataclasses.dataclass
class ParallelSentences:
    source: list
    translation: list
    path: str = ""
    columns: tuple = (SOURCE_COLUMN, TRANSLATION_COLUMN)

    def __len__(self):
        return len(self.source)

    def take(self, idx):
        return ParallelSentences([self.source[i] for i in idx],
                                 [self.translation[i] for i in idx], self.path, self.columns)


def _rows(mask, limit=5):
    rows = (np.flatnonzero(mask) + 2).tolist()  # the header is row 1
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows[:limit])) + more


def read_parallel(path, columns=None):
    """Read and validate a parallel CSV; returns :class:`ParallelSentences`.

    Refused with a one-line :class:`BadInputError`: a missing, empty or
    non-UTF-8 file, fewer than two columns, a named column that is absent, a
    header without rows, and misaligned rows (a source without a translation
    or the reverse, or a row longer than the header).
    """
    what = "parallel file"
    check_text_file(path, what)
    if columns is not None:
        columns = tuple(columns)
        if len(columns) != 2 or not all(columns):
            raise BadInputError("--parallel-columns needs two column names, e.g. source,translation")
        if columns[0] == columns[1]:
            raise BadInputError(f"--parallel-columns names {columns[0]!r} twice; a source and "
                                "its translation need two columns")
    frame = read_csv(path, what)
    if columns is None:
        if len(frame.columns) < 2:
            raise BadInputError(
                f"{what} {path} has {len(frame.columns)} column ({', '.join(map(str, frame.columns))});"
                " it needs a source and a translation column"
            )
        columns = tuple(map(str, frame.columns[:2]))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInputError(
            f"{what} {path} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, frame.columns))}); see --parallel-columns"
        )
    if frame.empty:
        raise BadInputError(f"{what} {path} has a header but no sentences")
    src, tgt = (frame[c].astype(str) for c in columns)
    no_src, no_tgt = (src.str.strip() == "").to_numpy(), (tgt.str.strip() == "").to_numpy()
    if (no_src & no_tgt).any():
        raise BadInputError(f"{what} {path}: no sentence in {_rows(no_src & no_tgt)}")
    if (no_src ^ no_tgt).any():
        mask = no_src ^ no_tgt
        raise BadInputError(
            f"{what} {path} is misaligned: {_rows(mask)} "
            f"{'has' if mask.sum() == 1 else 'have'} a sentence in one of "
            f"{columns[0]!r} / {columns[1]!r} and none in the other"
        )
    same = (src.str.strip() == tgt.str.strip()).to_numpy()
    if same.all():
        raise BadInputError(f"{what} {path}: every translation equals its source "
                            f"({columns[0]!r} / {columns[1]!r}); check --parallel-columns")
    return ParallelSentences(src.tolist(), tgt.tolist(), str(path), columns)


# --- building a parallel file from stsb-multi-mt -------------------------------------------


def stsb_parallel(data_dir=None, languages=None, split="train", source="en"):
    """A parallel table (source, translation, language) from stsb-multi-mt files.

    Every row *i* of ``stsb-SOURCE-SPLIT.csv`` gives two source sentences;
    each is paired with row *i* of every other language's file (``languages``,
    default every one there).  The files are found and checked as by
    :func:`~domain_tune.datasets.stsb_multi.load_multilingual` (``data_dir``,
    else ``$DOMAIN_TUNE_MULTILINGUAL_DIR``, else the cached download).  Pairs
    repeated within a language (STS-B repeats some sentences) are written once.
    From ``split="train"``, the held-out panel's rows are left out, and so is
    every other pair with a sentence (in any language of the folder) that a
    held-out row holds.
    """
    from domain_tune.datasets.stsb_multi import (
        HELDOUT, find_languages, heldout_rows, load_multilingual, sentence_key)

    if data_dir is not None and not os.path.isdir(data_dir):
        raise BadInputError(f"{data_dir}: not a directory (the multilingual STS benchmark's folder)")
    if split == HELDOUT:
        raise BadInputError(f"split {HELDOUT!r} is the held-out panel, never parallel data; "
                            "use train")
    data = load_multilingual(data_dir, split, languages, pivot=source)
    src = data.data[source]
    keep = np.ones(len(src), dtype=bool)
    if split == "train":
        keep[heldout_rows(len(src))] = False
        every = [lang for lang in find_languages(data.folder, split) if lang != source]
        held = load_multilingual(data.folder, HELDOUT, every, pivot=source)
        keys = {sentence_key(t) for d in held.data.values() for t in d.sentences1 + d.sentences2}
        for d in data.data.values():  # the sentences this file would hold
            keep &= np.array([sentence_key(a) not in keys and sentence_key(b) not in keys
                              for a, b in zip(d.sentences1, d.sentences2)], dtype=bool)
    rows = np.flatnonzero(keep)
    if not len(rows):
        raise BadInputError(
            f"{data.folder}: every {split} row shares a sentence with the held-out panel (a fifth "
            "of the rows, kept out of parallel data); no parallel sentences are left")

    def column(split_data, which):
        texts = split_data.sentences1 if which == 1 else split_data.sentences2
        return [texts[i] for i in rows]

    frames = []
    for lang in data.languages:
        tgt = data.data[lang]
        frame = pd.DataFrame({SOURCE_COLUMN: column(src, 1) + column(src, 2),
                              TRANSLATION_COLUMN: column(tgt, 1) + column(tgt, 2),
                              LANGUAGE_COLUMN: lang})
        blank = (frame[SOURCE_COLUMN].str.strip() == "") | (frame[TRANSLATION_COLUMN].str.strip() == "")
        if blank.any():
            warnings.warn(f"{os.path.basename(tgt.path)}: {int(blank.sum())} blank sentences left out",
                          DomainTuneWarning, stacklevel=2)
        frames.append(frame[~blank].drop_duplicates([SOURCE_COLUMN, TRANSLATION_COLUMN]))
    return pd.concat(frames, ignore_index=True)


def drop_heldout(parallel, keys):
    """``parallel`` without the pairs whose source or translation is a sentence of ``keys``
    (:func:`~domain_tune.datasets.stsb_multi.heldout_sentences`); returns ``(kept, dropped)``."""
    from domain_tune.datasets.stsb_multi import sentence_key

    if not keys:
        return parallel, 0
    idx = [i for i, (a, b) in enumerate(zip(parallel.source, parallel.translation))
           if sentence_key(a) not in keys and sentence_key(b) not in keys]
    dropped = len(parallel) - len(idx)
    return (parallel.take(idx) if dropped else parallel), dropped


def write_parallel(frame, out):
    """Write ``frame`` to ``out`` (UTF-8 CSV with a header); the file appears only when complete."""
    from domain_tune.outputs import atomic_file

    with atomic_file(out) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8")
    return out
