"""Scored training pairs and a retrieval benchmark from a taxonomy (see :mod:`.taxonomy`).

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

A *shared* label, one that is a label of two or more concepts (an alternative
label of several occupations, or another occupation's preferred label), is
ambiguous: it is neither a positive pair nor a query (counted in the
statistics).

Two settings (``corpus_aware``): *strict*, the default, keeps every text of a
held-out concept out of training; *corpus-aware* also trains on the corpus side
of every concept, held-out ones included (its preferred label with its
description and with its group, see :func:`corpus_pairs`), since in deployment
the corpus is known and only the queries are not.  No alternative label of a
held-out concept is in any training pair in either setting.

With labels in more languages (:attr:`Taxonomy.translations`), the recipe runs
within each language over the concepts that have a label in it, and
cross-lingual pairs join each alternative label to its concept's main-language
preferred label and the preferred labels of a concept to each other (see
:func:`_cross_pairs`).  The hold-out is by concept, in every language at once;
each further language has held-out queries and a corpus of its own.

The pairs are written by :func:`domain_tune.datasets.pairs_folder.write_pairs`.
"""

import collections
import dataclasses
import math
import warnings

import numpy as np
import pandas as pd

from domain_tune.datasets.pairs import PairsWarning
from domain_tune.datasets.retrieval_set import LABEL_COLUMN, QUERY_COLUMN
from domain_tune.datasets.taxonomy import label_key
from domain_tune.errors import BadInputError

PAIR_COLUMNS = ("base", "ref", "similarity")

DEFAULT_HOLDOUT = 0.2
DEFAULT_SEED = 0
DEFAULT_NEGATIVES = 1
DEFAULT_RELATED = 3
DEFAULT_COSINES = {"positive": 1.0, "related": 0.7, "unrelated": 0.0}

KINDS = ("positive", "synonym", "related", "unrelated", "description", "description_unrelated")
CORPUS_KINDS = ("corpus_related", "corpus_description", "corpus_description_unrelated")
CROSS_KINDS = ("cross_positive", "translation", "cross_unrelated")
MONOLINGUAL_KINDS = KINDS + ("corpus_related", "corpus_description", "corpus_description_unrelated")
# the cosine target of each kind of pair
GRADES = {
    "positive": "positive", "synonym": "positive", "description": "positive",
    "cross_positive": "positive", "translation": "positive",
    "corpus_description": "positive", "corpus_translation": "positive",
    "related": "related", "corpus_related": "related",
    "unrelated": "unrelated", "description_unrelated": "unrelated", "cross_unrelated": "unrelated",
    "corpus_description_unrelated": "unrelated",
}
SETTINGS = ("strict", "corpus-aware")


def angular_score(cos):
    """``1 - arccos(cos) / pi``: 1.0, 0.7468..., 0.5 for cosines 1.0, 0.7, 0.0."""
    return float(1.0 - math.acos(min(1.0, max(-1.0, cos))) / math.pi)


@dataclasses.dataclass
class PairSet:
    """Training pairs, held-out queries and the corpus built from one taxonomy."""

    train: pd.DataFrame  # base, ref, similarity
    queries: pd.DataFrame  # query, <id column>
    corpus: pd.DataFrame  # label, <id column>
    heldout_ids: list
    stats: dict
    params: dict
    # label keys that must appear in no column of train.csv (hard negatives included): every
    # label of a held-out concept (strict) or its alternative labels only (corpus-aware)
    excluded_keys: frozenset = frozenset()
    # more languages (multilingual labels): held-out queries and corpus per language
    language_queries: dict = dataclasses.field(default_factory=dict)
    language_corpora: dict = dataclasses.field(default_factory=dict)


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
    k = min(k, len(candidates))  # no more distinct others than there are candidates

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
    corpus_aware=False,
):
    """Score pairs of ``taxonomy`` labels for training and hold out concepts for evaluation.

    ``holdout`` is the fraction of concepts held out (by id); ``negatives`` the
    unrelated pairs per positive pair; ``related`` the related pairs drawn per
    training concept from its group; ``cosines`` overrides the cosine targets
    (keys ``positive``, ``related``, ``unrelated``); ``descriptions`` adds
    description pairs; ``max_pairs`` keeps a random subset of the training
    pairs; ``corpus_aware`` adds the corpus-side pairs of every concept (see
    :func:`corpus_pairs`).  With ``taxonomy.translations``, pairs within and
    across languages, and held-out queries and a corpus per further language
    (``PairSet.language_queries``, ``language_corpora``).  Deterministic for a given taxonomy and ``seed``; the
    corpus-aware pairs are drawn from a random stream of their own, so the strict
    pairs of a seed are all among the corpus-aware ones (before ``max_pairs``).
    """
    cosines = {**DEFAULT_COSINES, **(cosines or {})}
    _check_params(holdout, seed, negatives, related, cosines, max_pairs, synonyms)
    if descriptions and not any(taxonomy.descriptions):
        raise BadInputError(
            f"--descriptions: taxonomy {taxonomy.path} has no descriptions (see --description-column)"
        )
    if corpus_aware and not any(taxonomy.descriptions) and not any(taxonomy.groups):
        raise BadInputError(
            f"--corpus-aware: taxonomy {taxonomy.path} has neither descriptions nor groups, so its "
            "corpus side adds nothing (see --description-column, --group-column)"
        )
    id_col = _output_id_column(taxonomy.id_column)
    scores = {k: angular_score(v) for k, v in cosines.items()}
    rng = np.random.default_rng([seed, 2])
    syn_rng = np.random.default_rng([seed, 3])  # its own stream: other pairs do not change
    views = [_Labels(taxonomy.language, taxonomy.labels, taxonomy.synonyms)] + [
        _Labels(lang, t.labels, t.synonyms) for lang, t in taxonomy.translations.items()]
    main, multilingual = views[0], len(views) > 1

    heldout_ids = choose_heldout(taxonomy.ids, holdout, seed)
    heldout = np.array([cid in heldout_ids for cid in taxonomy.ids])
    train_idx = np.flatnonzero(~heldout)
    heldout_alt_keys, heldout_keys = set(), set()
    for view in views:  # the hold-out is by concept: every language at once
        for i in np.flatnonzero(heldout):
            heldout_alt_keys.update(label_key(a) for a in view.synonyms[i])
            if view.labels[i]:
                heldout_keys.add(label_key(view.labels[i]))
    heldout_keys |= heldout_alt_keys
    excluded = heldout_alt_keys if corpus_aware else heldout_keys

    groups = taxonomy.groups
    recipe = dict(groups=groups, negatives=negatives, related=related, synonyms=synonyms)
    pairs = _monolingual_pairs(  # (base, ref, kind, language)
        main, train_idx, rng=rng, syn_rng=syn_rng, **recipe,
        descriptions=taxonomy.descriptions if descriptions else None,
    )
    for view in views[1:]:  # each language its own random streams: adding one changes no other
        pairs += _monolingual_pairs(view, train_idx, rng=_rng(seed, 5, view.language),
                                    syn_rng=_rng(seed, 6, view.language), **recipe)
        pairs += _cross_pairs(view, main, train_idx, groups, negatives, _rng(seed, 7, view.language))
    if corpus_aware:
        pairs += [(*pair, main.language) for pair in corpus_pairs(
            taxonomy, heldout, related, negatives, descriptions, np.random.default_rng([seed, 4]))]
        for view in views[1:]:
            pairs += _corpus_language_pairs(view, main, heldout, groups, related,
                                            _rng(seed, 8, view.language))

    kept, leaked, duplicates = _keep(pairs, excluded)
    order = rng.permutation(len(kept))
    kept = [kept[k] for k in order]
    dropped_max = 0
    if max_pairs is not None and len(kept) > max_pairs:
        dropped_max = len(kept) - max_pairs
        kept = kept[:max_pairs]
    score_of = {kind: scores[grade] for kind, grade in GRADES.items()}
    train = pd.DataFrame(
        [(b, r, score_of[k]) for b, r, k, _ in kept], columns=list(PAIR_COLUMNS)
    ).astype({"similarity": float})

    def queries_of(view):
        return pd.DataFrame(
            [(alt, taxonomy.ids[i]) for i in np.flatnonzero(heldout) for alt in view.unambiguous(i)],
            columns=[QUERY_COLUMN, id_col],
        )

    def corpus_of(view):
        return pd.DataFrame(
            [(label, cid) for label, cid in zip(view.labels, taxonomy.ids) if label],
            columns=[LABEL_COLUMN, id_col],
        )

    queries, corpus = queries_of(main), corpus_of(main)
    counts = collections.Counter(k for _, _, k, _ in kept)
    kinds = KINDS + (CROSS_KINDS if multilingual else ()) + (CORPUS_KINDS if corpus_aware else ())
    if multilingual and corpus_aware:
        kinds += ("corpus_translation",)
    stats = {
        **taxonomy.stats,
        "shared_alternative_labels": main.shared,
        "heldout_concepts": int(heldout.sum()),
        "training_concepts": int(len(train_idx)),
        "train_pairs": len(kept),
        "pairs": {k: counts.get(k, 0) for k in kinds},
        "dropped_heldout_overlap": leaked,
        "dropped_duplicates": duplicates,
        "dropped_max_pairs": dropped_max,
        "queries": len(queries),
        "corpus": len(corpus),
    }
    language_queries = {view.language: queries_of(view) for view in views[1:]}
    language_corpora = {view.language: corpus_of(view) for view in views[1:]}
    if multilingual:
        stats.update(_language_stats(taxonomy, views, kept, kinds, {main.language: queries,
                                     **language_queries}, {main.language: corpus, **language_corpora}))
    if not kept and len(train_idx):
        warnings.warn(
            f"{taxonomy.path}: no training pairs: the training concepts have no alternative labels "
            "and no group of two or more (see --synonyms-column, --group-column)",
            PairsWarning, stacklevel=2,
        )
    if not len(train_idx):
        warnings.warn(
            f"{taxonomy.path}: every concept is held out (--holdout {holdout:g}): train.csv has "
            "no pairs; the queries and corpus make a retrieval benchmark of the base model",
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
        "setting": SETTINGS[bool(corpus_aware)],
    }
    if multilingual:
        params["languages"] = [view.language for view in views]
        params["label_files"] = {taxonomy.language: taxonomy.path,
                                 **{lang: t.path for lang, t in taxonomy.translations.items()}}
    return PairSet(train, queries, corpus, sorted(heldout_ids), stats, params, frozenset(excluded),
                   language_queries, language_corpora)


def _keep(pairs, excluded):
    """Deduplicate ``pairs`` (unordered, case-insensitive; a text with itself is no pair) and drop
    those with a text in ``excluded``.  Returns the pairs kept, and the counts of both drops."""
    kept, seen, leaked, duplicates = [], set(), 0, 0
    for base, ref, kind, language in pairs:
        kb, kr = label_key(base), label_key(ref)
        if kb in excluded or kr in excluded:
            leaked += 1
            continue
        key = (kb, kr) if kb <= kr else (kr, kb)
        if key in seen or kb == kr:
            duplicates += 1
            continue
        seen.add(key)
        kept.append((base, ref, kind, language))
    return kept, leaked, duplicates


def _language_stats(taxonomy, views, kept, kinds, queries, corpora):
    """``languages``: per language its labels and pairs; ``cross_lingual``: per pair of languages."""
    by_language = collections.defaultdict(collections.Counter)
    for _, _, kind, language in kept:
        by_language[language][kind] += 1
    main = views[0].language
    languages = {}
    for view in views:
        t = taxonomy.translations.get(view.language)
        languages[view.language] = {
            **(t.stats if t else taxonomy.stats),
            "shared_alternative_labels": view.shared,
            "queries": len(queries[view.language]),
            "corpus": len(corpora[view.language]),
            "pairs": {k: by_language[view.language][k] for k in kinds if k in MONOLINGUAL_KINDS},
        }
    cross = {}
    for view in views[1:]:
        pair = f"{view.language}-{main}"
        cross[pair] = {k: by_language[pair][k] for k in kinds if k not in MONOLINGUAL_KINDS}
    return {"languages": languages, "cross_lingual": cross}


class _Labels:
    """One language's labels of the concepts: preferred (``""`` for none) and alternative.

    A label shared by two or more concepts in this language is ambiguous: it is
    neither a positive pair nor a query.
    """

    def __init__(self, language, labels, synonyms):
        self.language, self.labels, self.synonyms = language, labels, synonyms
        self.owners = collections.defaultdict(set)
        for i, (label, alts) in enumerate(zip(labels, synonyms)):
            if label:
                self.owners[label_key(label)].add(i)
            for alt in alts:
                self.owners[label_key(alt)].add(i)

    def unambiguous(self, i):
        return [a for a in self.synonyms[i] if len(self.owners[label_key(a)]) == 1]

    @property
    def shared(self):
        return sum(len(self.synonyms[i]) - len(self.unambiguous(i)) for i in range(len(self.labels)))


def _rng(seed, stream, language):
    """A random stream of its own for a language (by its code, not by the order of the files)."""
    return np.random.default_rng([seed, stream, *language.encode()])


def _monolingual_pairs(view, train_idx, groups, negatives, related, synonyms, rng, syn_rng,
                       descriptions=None):
    """The strict recipe in one language, over the training concepts that have a label in it."""
    candidates = train_idx if all(view.labels[j] for j in train_idx) else np.array(
        [j for j in train_idx if view.labels[j]], dtype=int)
    by_group = collections.defaultdict(list)
    for i in candidates:
        if groups[i]:
            by_group[groups[i]].append(int(i))
    with_description = (np.array([j for j in train_idx if descriptions[j]], dtype=int)
                        if descriptions is not None else None)
    pairs, lang = [], view.language
    for i in candidates:
        label = view.labels[i]
        for alt in view.unambiguous(i):
            pairs.append((alt, label, "positive", lang))
            for j in _sample_others(rng, candidates, i, groups, negatives):
                pairs.append((alt, view.labels[j], "unrelated", lang))
        alts = view.unambiguous(i)
        if synonyms and len(alts) > 1:
            couples = [(a, b) for x, a in enumerate(alts) for b in alts[x + 1 :]]
            for k in syn_rng.permutation(len(couples))[:synonyms]:
                pairs.append((*couples[k], "synonym", lang))
        if related and groups[i]:
            mates = [j for j in by_group[groups[i]] if j != i]
            if mates:
                for j in rng.permutation(mates)[:related]:
                    pairs.append((label, view.labels[j], "related", lang))
        if descriptions is not None and descriptions[i]:
            pairs.append((label, descriptions[i], "description", lang))
            for j in _sample_others(rng, with_description, i, groups, negatives):
                pairs.append((label, descriptions[j], "description_unrelated", lang))
    return pairs


def _cross_pairs(view, main, train_idx, groups, negatives, rng):
    """Cross-lingual pairs of a training concept with a label in ``view``'s language.

    ``cross_positive``: each unshared alternative label with the concept's
    preferred label in the main language (a query in one language, the corpus
    in another), with ``negatives`` ``cross_unrelated`` pairs (the main-language
    preferred label of a concept of another group); ``translation``: the
    preferred labels of the concept in both languages.
    """
    pairs, lang = [], f"{view.language}-{main.language}"
    for i in train_idx:
        if not view.labels[i]:
            continue
        for alt in view.unambiguous(i):
            pairs.append((alt, main.labels[i], "cross_positive", lang))
            for j in _sample_others(rng, train_idx, i, groups, negatives):
                pairs.append((alt, main.labels[j], "cross_unrelated", lang))
        pairs.append((view.labels[i], main.labels[i], "translation", lang))
    return pairs


def _corpus_language_pairs(view, main, heldout, groups, related, rng):
    """The corpus-aware pairs of a held-out concept in another language: its preferred label with
    up to ``related`` of its group's in that language (``corpus_related``) and with its main-language
    preferred label (``corpus_translation``)."""
    by_group = collections.defaultdict(list)
    for i, label in enumerate(view.labels):
        if label and groups[i]:
            by_group[groups[i]].append(i)
    pairs = []
    for i in np.flatnonzero(heldout):
        label = view.labels[i]
        if not label:
            continue
        if related and groups[i]:
            mates = [j for j in by_group[groups[i]] if j != i]
            for j in (rng.permutation(mates)[:related] if mates else []):
                pairs.append((label, view.labels[j], "corpus_related", view.language))
        pairs.append((label, main.labels[i], "corpus_translation", f"{view.language}-{main.language}"))
    return pairs


def corpus_pairs(taxonomy, heldout, related, negatives, descriptions, rng):
    """The corpus-aware pairs: what the corpus side of every concept says, held-out ones included.

    In deployment the corpus (every concept's preferred label and description,
    and its group) is known; only the queries are not.  For each concept, in
    file order, the pairs the strict recipe does not already make:

    * ``corpus_related`` (related): a held-out concept's preferred label with
      the preferred labels of up to ``related`` concepts of its group, drawn
      among all concepts (a training concept's group mates among the training
      concepts are strict pairs already);
    * ``corpus_description`` (positive): a preferred label and its own
      description, for every concept with one (only the held-out ones when the
      strict recipe has ``descriptions`` on, which pairs the training ones), and
      ``corpus_description_unrelated`` (unrelated): the label with ``negatives``
      descriptions of concepts of other groups, drawn among all concepts.

    ``heldout`` is a boolean array over the concepts.  No alternative label is
    read here; the caller still drops any pair whose text equals a held-out
    concept's alternative label (a preferred label may be another's synonym).
    """
    n, groups = len(taxonomy), taxonomy.groups
    by_group = collections.defaultdict(list)
    for i in range(n):
        if groups[i]:
            by_group[groups[i]].append(i)
    with_description = np.array([j for j in range(n) if taxonomy.descriptions[j]], dtype=int)
    pairs = []
    for i in range(n):
        label = taxonomy.labels[i]
        if heldout[i] and related and groups[i]:
            mates = [j for j in by_group[groups[i]] if j != i]
            for j in (rng.permutation(mates)[:related] if mates else []):
                pairs.append((label, taxonomy.labels[j], "corpus_related"))
        if taxonomy.descriptions[i] and (heldout[i] or not descriptions):
            pairs.append((label, taxonomy.descriptions[i], "corpus_description"))
            for j in _sample_others(rng, with_description, i, groups, negatives):
                pairs.append((label, taxonomy.descriptions[j], "corpus_description_unrelated"))
    return pairs


def _output_id_column(id_column):
    if id_column in (QUERY_COLUMN, LABEL_COLUMN):
        raise BadInputError(
            f"--id-column {id_column!r} clashes with the output columns {QUERY_COLUMN!r}/{LABEL_COLUMN!r}; "
            "rename the column"
        )
    return id_column
