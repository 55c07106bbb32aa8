"""A validation split carved from the training concepts of a taxonomy.

Choosing hyper-parameters or retrieval weights on the held-out (test)
queries makes the reported numbers optimistic.  :func:`carve_validation`
removes a fraction of the *training* concepts as well: none of their labels
enters a training pair, their alternative labels become validation queries,
ranked against the same corpus as the test queries.  Training, tuning and
testing then see three disjoint sets of concepts.
"""

import numpy as np

from domain_tune.datasets.taxonomy import label_key
from domain_tune.datasets.taxonomy_pairs import build_pairs


def concept_keys(taxonomy, ids, alternative_only=False):
    """The label keys (preferred and alternative; alternative only if asked) of the concepts
    ``ids``, in every language of the taxonomy (its main labels and each of
    :attr:`Taxonomy.translations`)."""
    ids = set(ids)
    keys = set()
    views = [(taxonomy.labels, taxonomy.synonyms)]
    views += [(t.labels, t.synonyms) for t in taxonomy.translations.values()]
    for labels, synonyms in views:
        for cid, label, alts in zip(taxonomy.ids, labels, synonyms):
            if cid in ids:
                if label and not alternative_only:  # no row in a language: no label
                    keys.add(label_key(label))
                keys.update(label_key(a) for a in alts)
    return keys


def drop_texts(frame, keys, columns=("base", "ref")):
    """Rows of ``frame`` none of whose ``columns`` is one of ``keys`` (label keys)."""
    bad = np.zeros(len(frame), dtype=bool)
    for c in columns:
        if c in frame.columns:
            bad |= frame[c].map(label_key).isin(keys).to_numpy()
    return frame[~bad].reset_index(drop=True)


def carve_validation(taxonomy, heldout_ids, fraction, seed, **build_options):
    """Training pairs without the held-out *and* the validation concepts, and validation queries.

    ``heldout_ids`` are the test concepts (of :func:`build_pairs` on the whole
    taxonomy); ``fraction`` of the remaining concepts become validation
    concepts.  Returns the :class:`PairSet` of the remaining taxonomy: its
    ``train`` names no text of a held-out or validation concept, its
    ``queries`` are the validation queries, its ``heldout_ids`` the validation
    ids; its ``corpus`` holds the training and validation concepts only (rank
    validation queries against the whole taxonomy's corpus, as the test
    queries are; mine hard negatives with this one).
    """
    heldout_ids = set(heldout_ids)
    keep = [i for i, cid in enumerate(taxonomy.ids) if cid not in heldout_ids]
    inner = build_pairs(taxonomy.subset(keep), holdout=fraction, seed=seed, **build_options)
    # a training label shared with a test concept is a text of that concept too
    test_keys = concept_keys(taxonomy, heldout_ids)
    inner.train = drop_texts(inner.train, test_keys)
    inner.excluded_keys = frozenset(inner.excluded_keys) | test_keys  # nor a mined negative
    inner.stats["train_pairs"] = len(inner.train)
    inner.stats["validation_concepts"] = len(inner.heldout_ids)
    return inner
