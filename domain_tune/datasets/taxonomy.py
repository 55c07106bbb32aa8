"""Scored training pairs and a retrieval benchmark from a taxonomy such as ESCO.

A *taxonomy* is a CSV with one row per concept: an id, a preferred label,
alternative labels (several in one cell, newline-separated by default), and
optionally a group (concepts of one group are related) and a description.
ESCO occupations have exactly this shape (``conceptUri``, ``preferredLabel``,
``altLabels``, ``iscoGroup``, ``description``); :data:`ESCO_COLUMNS` names them.

The scoring scheme is the one of the article this tool grew from.  Its scores
1.0 / 0.7468 / 0.5 are the angular similarities ``1 - arccos(cos) / pi`` of
the cosine targets 1.0 / 0.7 / 0.0:

* positive (cosine 1.0): an alternative label and its concept's preferred label;
* related (cosine 0.7): the preferred labels of two concepts of the same group
  (for ESCO, the same ISCO-08 unit group);
* unrelated (cosine 0.0): an alternative label and the preferred label of a
  random concept of another group;
* optionally (``descriptions=True``) a preferred label and its own description
  (positive) and the descriptions of random concepts of other groups (unrelated).

A fraction of the concepts is held out (by id): no label of a held-out concept
(preferred or alternative, compared case-insensitively after collapsing white
space) appears in any training pair.  Their alternative labels become retrieval
queries against a corpus of every concept's preferred label.  ``holdout=1``
writes no training pairs and makes every alternative label a query: a benchmark
of the whole taxonomy for a model trained on something else.

Label clean-up (counted in the statistics):

* white space is stripped and collapsed; a label repeated within one concept
  (case-insensitively) is kept once;
* an alternative label equal to its own preferred label is not a pair;
* a *shared* label, one that is a label of two or more concepts (an
  alternative label of several occupations, or another occupation's preferred
  label), is ambiguous: it is neither a positive pair nor a query.

Outputs are written by :func:`write_pairs` into a directory that appears only
when complete: ``train.csv`` (``base,ref,similarity``),
``heldout_queries.csv`` (``query,<id column>``), ``corpus.csv``
(``label,<id column>``) and ``README.md`` with the counts.
"""

import collections
import dataclasses
import math
import os
import warnings

import numpy as np
import pandas as pd

from domain_tune.datasets.files import check_text_file, read_csv
from domain_tune.datasets.pairs import PairsWarning
from domain_tune.errors import BadInputError
from domain_tune.outputs import atomic_directory

ESCO_COLUMNS = {
    "id_column": "conceptUri",
    "label_column": "preferredLabel",
    "synonyms_column": "altLabels",
    "group_column": "iscoGroup",
    "description_column": "description",
}
ESCO_ATTRIBUTION = "ESCO © European Union"

PAIR_COLUMNS = ("base", "ref", "similarity")
QUERY_COLUMN = "query"
LABEL_COLUMN = "label"

DEFAULT_HOLDOUT = 0.2
DEFAULT_SEED = 0
DEFAULT_NEGATIVES = 1
DEFAULT_RELATED = 3
DEFAULT_COSINES = {"positive": 1.0, "related": 0.7, "unrelated": 0.0}

KINDS = ("positive", "synonym", "related", "unrelated", "description", "description_unrelated")


def angular_score(cos):
    """``1 - arccos(cos) / pi``: 1.0, 0.7468..., 0.5 for cosines 1.0, 0.7, 0.0."""
    return float(1.0 - math.acos(min(1.0, max(-1.0, cos))) / math.pi)


def normalize_label(text):
    """Strip and collapse white space (``"wiredrawing  machine tender"`` -> one space)."""
    return " ".join(str(text).split())


def label_key(text):
    """The key under which two labels count as the same: normalised and case-folded."""
    return normalize_label(text).casefold()


def unescape_separator(separator):
    r"""Turn the two-character escapes ``\n`` and ``\t`` typed on a command line into the characters."""
    return separator.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")


# --- reading ----------------------------------------------------------------


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


@dataclasses.dataclass
class Taxonomy:
    """Concepts read from a taxonomy CSV, in file order, labels cleaned up."""

    ids: list
    labels: list  # preferred labels
    synonyms: list  # list of lists of alternative labels (normalised, deduplicated per concept)
    groups: list  # group per concept ("" if none)
    descriptions: list  # description per concept ("" if none)
    path: str
    id_column: str
    cleanup: list  # per concept: (alternative labels in the file, same as preferred, repeated)

    def __len__(self):
        return len(self.ids)

    @property
    def stats(self):
        raw, same, repeated = (sum(c[k] for c in self.cleanup) for k in range(3))
        return {
            "concepts": len(self.ids),
            "alternative_labels_raw": raw,
            "same_as_preferred": same,
            "repeated_in_concept": repeated,
            "alternative_labels": sum(len(s) for s in self.synonyms),
        }

    def subset(self, keep):
        """The concepts whose index is in ``keep`` (an iterable of indices), in file order."""
        keep = sorted(keep)
        pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
        return Taxonomy(pick(self.ids), pick(self.labels), pick(self.synonyms), pick(self.groups),
                        pick(self.descriptions), self.path, self.id_column, pick(self.cleanup))


def read_taxonomy(
    path, id_column, label_column, synonyms_column, group_column=None, description_column=None,
    separator="\n",
):
    """Read a taxonomy CSV: one concept per row, alternative labels split on ``separator``.

    Every id must be present and unique and every concept must have a
    preferred label; errors name the file, the row (as a spreadsheet counts:
    the header is row 1) and the column.
    """
    if not separator:
        raise BadInputError("--separator must not be empty")
    options = {
        id_column: "--id-column", label_column: "--label-column",
        synonyms_column: "--synonyms-column",
    }
    columns = [id_column, label_column, synonyms_column]
    if group_column:
        columns.append(group_column)
        options.setdefault(group_column, "--group-column")
    if description_column:
        columns.append(description_column)
        options.setdefault(description_column, "--description-column")
    frame = read_csv_columns(path, columns, "taxonomy", options)

    ids, labels, synonyms, groups, descriptions, cleanup = [], [], [], [], [], []
    seen = {}
    for row, rec in enumerate(frame.itertuples(index=False), 2):  # the header is row 1
        rec = dict(zip(frame.columns, rec))
        cid = rec[id_column].strip()
        if not cid:
            raise BadInputError(f"taxonomy {path}: row {row} has an empty {id_column}")
        if cid in seen:
            raise BadInputError(
                f"taxonomy {path}: {id_column} {cid!r} appears in rows {seen[cid]} and {row}"
            )
        seen[cid] = row
        label = normalize_label(rec[label_column])
        if not label:
            raise BadInputError(f"taxonomy {path}: row {row} has an empty {label_column}")
        own = {label.casefold()}
        alts, raw, same, repeated = [], 0, 0, 0
        for alt in rec[synonyms_column].split(separator):
            alt = normalize_label(alt)
            if not alt:
                continue
            raw += 1
            key = alt.casefold()
            if key == label.casefold():
                same += 1
            elif key in own:
                repeated += 1
            else:
                own.add(key)
                alts.append(alt)
        ids.append(cid)
        labels.append(label)
        synonyms.append(alts)
        groups.append(rec[group_column].strip() if group_column else "")
        descriptions.append(normalize_label(rec[description_column]) if description_column else "")
        cleanup.append((raw, same, repeated))
    return Taxonomy(ids, labels, synonyms, groups, descriptions, os.fspath(path), id_column, cleanup)


def read_esco(path, separator="\n"):
    """Read ESCO's ``occupations_en.csv`` (multi-line quoted fields are fine)."""
    return read_taxonomy(path, **ESCO_COLUMNS, separator=separator)


def only_groups(taxonomy, prefixes):
    """Keep the concepts whose group starts with one of ``prefixes`` (e.g. ``["25", "35"]``).

    The subset is then the whole taxonomy for :func:`build_pairs`: a label is
    *shared* only if two concepts of the subset have it.
    """
    prefixes = [p.strip() for p in prefixes if p.strip()]
    if not prefixes:
        raise BadInputError("--only-groups needs at least one group prefix")
    keep = [i for i, g in enumerate(taxonomy.groups) if g and g.startswith(tuple(prefixes))]
    if not keep:
        raise BadInputError(
            f"--only-groups {','.join(prefixes)}: no concept of {taxonomy.path} is in these groups"
        )
    return taxonomy.subset(keep)


# --- building pairs ---------------------------------------------------------


@dataclasses.dataclass
class PairSet:
    """Training pairs, held-out queries and the corpus built from one taxonomy."""

    train: pd.DataFrame  # base, ref, similarity
    queries: pd.DataFrame  # query, <id column>
    corpus: pd.DataFrame  # label, <id column>
    heldout_ids: list
    stats: dict
    params: dict


def _check_params(holdout, seed, negatives, related, cosines, max_pairs, synonyms=0):
    if not isinstance(holdout, (int, float)) or not 0.0 <= holdout <= 1.0:
        raise BadInputError(f"--holdout must be a fraction between 0 and 1 (got {holdout})")
    if seed < 0:
        raise BadInputError(f"--seed must be 0 or more (got {seed})")
    if negatives < 0:
        raise BadInputError(f"--negatives must be 0 or more (got {negatives})")
    if related < 0:
        raise BadInputError(f"--related must be 0 or more (got {related})")
    if synonyms < 0:
        raise BadInputError(f"--synonym-pairs must be 0 or more (got {synonyms})")
    if max_pairs is not None and max_pairs < 1:
        raise BadInputError(f"--max-pairs must be at least 1 (got {max_pairs})")
    for name, value in cosines.items():
        if not -1.0 <= value <= 1.0:  # also refuses NaN
            raise BadInputError(f"--{name}-cosine must be between -1 and 1 (got {value})")
    pos, rel, unrel = cosines["positive"], cosines["related"], cosines["unrelated"]
    if not (unrel < pos and unrel <= rel <= pos):
        raise BadInputError(
            f"the cosine targets must order positive > unrelated with related between them "
            f"(got positive {pos:g}, related {rel:g}, unrelated {unrel:g})"
        )


def choose_heldout(ids, fraction, seed):
    """The ids held out: ``round(fraction * n)`` of them, chosen by ``seed`` independently of row order."""
    ordered = sorted(ids)
    n = int(round(fraction * len(ordered)))
    perm = np.random.default_rng([seed, 1]).permutation(len(ordered))
    return {ordered[i] for i in perm[:n]}


def _sample_others(rng, candidates, i, groups, k):
    """Up to ``k`` distinct indices of ``candidates``, other than ``i`` and not in its group."""
    if k == 0 or len(candidates) == 0:
        return []

    def allowed(j):
        return j != i and (not groups[i] or groups[j] != groups[i])

    picked = []
    for _ in range(3):  # rejection sampling: a group is small next to the rest
        for j in candidates[rng.integers(len(candidates), size=2 * k + 2)]:
            j = int(j)
            if allowed(j) and j not in picked:
                picked.append(j)
                if len(picked) == k:
                    return picked
    rest = [int(j) for j in candidates if allowed(int(j)) and int(j) not in picked]
    if rest:  # a dominant group: choose among the allowed ones directly
        picked.extend(int(j) for j in rng.permutation(rest)[: k - len(picked)])
    return picked


def build_pairs(
    taxonomy, holdout=DEFAULT_HOLDOUT, seed=DEFAULT_SEED, negatives=DEFAULT_NEGATIVES,
    related=DEFAULT_RELATED, cosines=None, descriptions=False, max_pairs=None, synonyms=0,
):
    """Score pairs of ``taxonomy`` labels for training and hold out concepts for evaluation.

    ``holdout`` is the fraction of concepts held out (by id); ``negatives`` the
    unrelated pairs per positive pair; ``related`` the related pairs drawn per
    training concept from its group; ``cosines`` overrides the cosine targets
    (keys ``positive``, ``related``, ``unrelated``); ``descriptions`` adds
    description pairs; ``max_pairs`` keeps a random subset of the training
    pairs.  Deterministic for a given taxonomy and ``seed``.
    """
    cosines = {**DEFAULT_COSINES, **(cosines or {})}
    _check_params(holdout, seed, negatives, related, cosines, max_pairs, synonyms)
    if descriptions and not any(taxonomy.descriptions):
        raise BadInputError(
            f"--descriptions: taxonomy {taxonomy.path} has no descriptions (see --description-column)"
        )
    id_col = _output_id_column(taxonomy.id_column)
    scores = {k: angular_score(v) for k, v in cosines.items()}
    rng = np.random.default_rng([seed, 2])
    syn_rng = np.random.default_rng([seed, 3])  # its own stream: other pairs do not change
    n = len(taxonomy)

    # who owns which label key (preferred and alternative labels)
    owners = collections.defaultdict(set)
    for i in range(n):
        owners[label_key(taxonomy.labels[i])].add(i)
        for alt in taxonomy.synonyms[i]:
            owners[label_key(alt)].add(i)

    heldout_ids = choose_heldout(taxonomy.ids, holdout, seed)
    heldout = np.array([cid in heldout_ids for cid in taxonomy.ids])
    train_idx = np.flatnonzero(~heldout)
    heldout_keys = set()
    for i in np.flatnonzero(heldout):
        heldout_keys.add(label_key(taxonomy.labels[i]))
        heldout_keys.update(label_key(a) for a in taxonomy.synonyms[i])

    def unambiguous(i):
        return [a for a in taxonomy.synonyms[i] if len(owners[label_key(a)]) == 1]

    shared = sum(len(taxonomy.synonyms[i]) - len(unambiguous(i)) for i in range(n))
    groups = taxonomy.groups
    by_group = collections.defaultdict(list)
    for i in train_idx:
        if groups[i]:
            by_group[groups[i]].append(int(i))

    with_description = np.array([j for j in train_idx if taxonomy.descriptions[j]], dtype=int)
    pairs = []  # (base, ref, kind)
    for i in train_idx:
        label = taxonomy.labels[i]
        for alt in unambiguous(i):
            pairs.append((alt, label, "positive"))
            for j in _sample_others(rng, train_idx, i, groups, negatives):
                pairs.append((alt, taxonomy.labels[j], "unrelated"))
        alts = unambiguous(i)
        if synonyms and len(alts) > 1:
            couples = [(a, b) for x, a in enumerate(alts) for b in alts[x + 1 :]]
            for k in syn_rng.permutation(len(couples))[:synonyms]:
                pairs.append((*couples[k], "synonym"))
        if related and groups[i]:
            mates = [j for j in by_group[groups[i]] if j != i]
            if mates:
                for j in rng.permutation(mates)[:related]:
                    pairs.append((label, taxonomy.labels[j], "related"))
        if descriptions and taxonomy.descriptions[i]:
            pairs.append((label, taxonomy.descriptions[i], "description"))
            for j in _sample_others(rng, with_description, i, groups, negatives):
                pairs.append((label, taxonomy.descriptions[j], "description_unrelated"))

    # deduplicate (unordered, case-insensitive) and drop anything naming a held-out concept
    kept, seen, leaked, duplicates = [], set(), 0, 0
    for base, ref, kind in pairs:
        kb, kr = label_key(base), label_key(ref)
        if kb in heldout_keys or kr in heldout_keys:
            leaked += 1
            continue
        key = (kb, kr) if kb <= kr else (kr, kb)
        if key in seen or kb == kr:
            duplicates += 1
            continue
        seen.add(key)
        kept.append((base, ref, kind))
    order = rng.permutation(len(kept))
    kept = [kept[k] for k in order]
    dropped_max = 0
    if max_pairs is not None and len(kept) > max_pairs:
        dropped_max = len(kept) - max_pairs
        kept = kept[:max_pairs]
    score_of = {
        "positive": scores["positive"], "description": scores["positive"],
        "synonym": scores["positive"],
        "related": scores["related"],
        "unrelated": scores["unrelated"], "description_unrelated": scores["unrelated"],
    }
    train = pd.DataFrame(
        [(b, r, score_of[k]) for b, r, k in kept], columns=list(PAIR_COLUMNS)
    ).astype({"similarity": float})

    queries = pd.DataFrame(
        [(alt, taxonomy.ids[i]) for i in np.flatnonzero(heldout) for alt in unambiguous(i)],
        columns=[QUERY_COLUMN, id_col],
    )
    corpus = pd.DataFrame(
        list(zip(taxonomy.labels, taxonomy.ids)), columns=[LABEL_COLUMN, id_col]
    )
    counts = collections.Counter(k for _, _, k in kept)
    stats = {
        **taxonomy.stats,
        "shared_alternative_labels": shared,
        "heldout_concepts": int(heldout.sum()),
        "training_concepts": int(len(train_idx)),
        "train_pairs": len(kept),
        "pairs": {k: counts.get(k, 0) for k in KINDS},
        "dropped_heldout_overlap": leaked,
        "dropped_duplicates": duplicates,
        "dropped_max_pairs": dropped_max,
        "queries": len(queries),
        "corpus": len(corpus),
    }
    if not kept and len(train_idx):
        warnings.warn(
            f"{taxonomy.path}: no training pairs: the training concepts have no alternative labels "
            "and no group of two or more (see --synonyms-column, --group-column)",
            PairsWarning, stacklevel=2,
        )
    if queries.empty and heldout.any():
        warnings.warn(
            f"{taxonomy.path}: no held-out concept has an alternative label to query with "
            f"({int(heldout.sum())} held out); heldout_queries.csv is empty", PairsWarning,
            stacklevel=2,
        )
    params = {
        "holdout": holdout, "seed": seed, "negatives": negatives, "related": related,
        "cosines": cosines, "scores": scores, "descriptions": bool(descriptions),
        "max_pairs": max_pairs, "synonyms": synonyms,
    }
    return PairSet(train, queries, corpus, sorted(heldout_ids), stats, params)


def _output_id_column(id_column):
    if id_column in (QUERY_COLUMN, LABEL_COLUMN):
        raise BadInputError(
            f"--id-column {id_column!r} clashes with the output columns {QUERY_COLUMN!r}/{LABEL_COLUMN!r}; "
            "rename the column"
        )
    return id_column


# --- writing ----------------------------------------------------------------


def write_pairs(pairset, out, overwrite=False, source=None, attribution=None, command=None):
    """Write ``train.csv``, ``heldout_queries.csv``, ``corpus.csv`` and ``README.md`` to ``out``.

    The directory appears only when complete (see :func:`atomic_directory`).
    """

    def write(tmp):
        pairset.train.to_csv(os.path.join(tmp, "train.csv"), index=False, encoding="utf-8")
        pairset.queries.to_csv(os.path.join(tmp, "heldout_queries.csv"), index=False, encoding="utf-8")
        pairset.corpus.to_csv(os.path.join(tmp, "corpus.csv"), index=False, encoding="utf-8")
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(render_readme(pairset, source, attribution, command))

    return atomic_directory(out, overwrite, write)


def render_readme(pairset, source=None, attribution=None, command=None):
    """The ``README.md`` of a pairs directory: where it came from, how, and the counts."""
    s, p = pairset.stats, pairset.params
    id_col = pairset.corpus.columns[1]
    lines = ["# Scored pairs and a retrieval benchmark from a taxonomy", ""]
    if source:
        lines += [f"Source: `{source}`." + (f" {attribution}." if attribution else ""), ""]
    elif attribution:
        lines += [f"{attribution}.", ""]
    if command:
        lines += ["Made with:", "", "```bash", command, "```", ""]
    cos, sc = p["cosines"], p["scores"]
    mined = p.get("hard_negatives")
    lines += [
        "## Files",
        "",
        "| file | columns | rows |",
        "| --- | --- | --- |",
        f"| `train.csv` | `base,ref,similarity{',negative' if mined else ''}` "
        f"| {s['train_pairs']:,} |",
        f"| `heldout_queries.csv` | `query,{id_col}` | {s['queries']:,} |",
        f"| `corpus.csv` | `label,{id_col}` | {s['corpus']:,} |",
        "",
        "## Scores",
        "",
        "`similarity` is the angular similarity `1 - arccos(cos) / pi` of a cosine target:",
        "",
        "| pair | cosine | similarity | pairs |",
        "| --- | --- | --- | --- |",
        f"| alternative label, its preferred label | {cos['positive']:g} | {sc['positive']:.4f} "
        f"| {s['pairs']['positive']:,} |",
    ]
    if p.get("synonyms"):
        lines += [
            f"| two alternative labels of one concept | {cos['positive']:g} | "
            f"{sc['positive']:.4f} | {s['pairs']['synonym']:,} |",
        ]
    lines += [
        f"| preferred labels of two concepts of one group | {cos['related']:g} | {sc['related']:.4f} "
        f"| {s['pairs']['related']:,} |",
        f"| alternative label, preferred label of a concept of another group | {cos['unrelated']:g} "
        f"| {sc['unrelated']:.4f} | {s['pairs']['unrelated']:,} |",
    ]
    if p["descriptions"]:
        lines += [
            f"| preferred label, its description | {cos['positive']:g} | {sc['positive']:.4f} "
            f"| {s['pairs']['description']:,} |",
            f"| preferred label, description of a concept of another group | {cos['unrelated']:g} "
            f"| {sc['unrelated']:.4f} | {s['pairs']['description_unrelated']:,} |",
        ]
    lines += [
        "",
        f"Parameters: hold-out {p['holdout']:g}, seed {p['seed']}, {p['negatives']} unrelated "
        f"pair(s) per positive, up to {p['related']} related pair(s) "
        + (f"and {p['synonyms']} synonym pair(s) " if p.get("synonyms") else "")
        + "per concept, description pairs "
        f"{'on' if p['descriptions'] else 'off'}"
        + (f", at most {p['max_pairs']:,} pairs" if p["max_pairs"] else "") + ".",
        "",
    ]
    if mined:
        lines += [
            f"Hard negatives: {s['hard_negatives']:,} positive pairs have a `negative`, a training",
            f"concept's preferred label drawn from the {mined['depth']} that `{mined['model']}` ranks",
            "highest for the pair's `base`, other than its own (read by the in-batch losses).",
            "",
        ]
    lines += [
        "## Counts",
        "",
        f"- concepts: {s['concepts']:,}; held out: {s['heldout_concepts']:,}; "
        f"training: {s['training_concepts']:,}",
        f"- alternative labels read: {s['alternative_labels_raw']:,}; equal to their own "
        f"preferred label (dropped): {s['same_as_preferred']:,}; repeated within a concept "
        f"(kept once): {s['repeated_in_concept']:,}; kept: {s['alternative_labels']:,}",
        f"- shared alternative labels (a label of two or more concepts: neither a pair nor a query): "
        f"{s['shared_alternative_labels']:,}",
        f"- training pairs dropped because a text is a label of a held-out concept: "
        f"{s['dropped_heldout_overlap']:,}; duplicates dropped: {s['dropped_duplicates']:,}"
        + (f"; dropped by --max-pairs: {s['dropped_max_pairs']:,}" if p["max_pairs"] else ""),
        "",
        "No label of a held-out concept (compared case-insensitively) appears in `train.csv`.",
        "The queries are the held-out concepts' unshared alternative labels; the corpus is every",
        "concept's preferred label, so a query is ranked against all concepts.",
        "",
        "## Evaluate",
        "",
        "```bash",
        "domain-tune eval-retrieval --model MODEL --queries heldout_queries.csv --corpus corpus.csv"
        + (f" --id-column {id_col}" if id_col != ESCO_COLUMNS["id_column"] else ""),
        "```",
        "",
    ]
    return "\n".join(lines)


# --- retrieval files ----------------------------------------------------------


@dataclasses.dataclass
class RetrievalSet:
    """Queries with their correct ids, and a corpus of labels with ids."""

    queries: list
    query_ids: list
    corpus_labels: list
    corpus_ids: list


def read_retrieval_set(
    queries_path, corpus_path, query_column=QUERY_COLUMN, id_column=ESCO_COLUMNS["id_column"],
    label_column=LABEL_COLUMN, limit=None,
):
    """Read a queries CSV (``query,<id>``) and a corpus CSV (``label,<id>``).

    A query may appear on several rows (several correct ids); a corpus id may
    have several labels.  ``limit`` keeps the first ``limit`` distinct queries.
    Every query's id must be in the corpus.
    """
    if limit is not None and limit < 1:
        raise BadInputError(f"--limit must be at least 1 (got {limit})")
    q = read_csv_columns(queries_path, [query_column, id_column], "queries",
                         {query_column: "--query-column", id_column: "--id-column"})
    c = read_csv_columns(corpus_path, [label_column, id_column], "corpus",
                         {label_column: "--label-column", id_column: "--id-column"})
    for frame, path, what, text_col in ((q, queries_path, "queries", query_column),
                                        (c, corpus_path, "corpus", label_column)):
        for col in (text_col, id_column):
            empty = np.flatnonzero(frame[col].str.strip().eq("").to_numpy())
            if len(empty):
                raise BadInputError(
                    f"{what} {path}: row {empty[0] + 2} has an empty {col}"
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
            f"queries {queries_path}: {len(missing)} {'row has' if len(missing) == 1 else 'rows have'} "
            f"a {id_column} that is not in corpus "
            f"{corpus_path} (first: row {rows[missing[0]] + 2}, {query_ids[missing[0]]!r})"
        )
    return RetrievalSet(queries, query_ids, c[label_column].tolist(), corpus_ids)
