"""Domain retrieval across languages: queries in one language, concepts labelled in another.

A pairs folder built with labels in several languages (``domain-tune pairs esco
--labels fr=occupations_fr.csv``) holds one retrieval set per language:
``heldout_queries.csv`` / ``corpus.csv`` for the main language and
``heldout_queries_LANG.csv`` / ``corpus_LANG.csv`` for each other one, all keyed
by the same concept ids.  :func:`evaluate_languages` ranks every language's
corpus for every language's queries (``fr->en``: French queries against the
English labels), embedding each distinct text once.

:func:`concept_split` divides held-out concepts into a *validation* and a *test*
part by a hash of the id (stable across runs, files and machines), so that
choices (a recipe, a weight) are made on validation concepts and reported on
test concepts that no choice saw.
"""

import hashlib
import os
import re

from domain_tune.datasets.retrieval_set import RetrievalSet, read_retrieval_set
from domain_tune.embedding import DEFAULT_BATCH_SIZE, encode
from domain_tune.errors import BadInputError
from domain_tune.evaluation.retrieval import evaluate_embeddings, group_queries

QUERIES, CORPUS = "heldout_queries", "corpus"
_LANG_FILE = re.compile(rf"^{QUERIES}_([A-Za-z][A-Za-z0-9-]*)\.csv$")
PARTS = ("validation", "test")


def language_sets(folder, main_language="en", id_column=None):
    """``{lang: RetrievalSet}`` of a pairs folder: the main language's files and every
    ``heldout_queries_LANG.csv`` with its ``corpus_LANG.csv``."""
    if not os.path.isdir(folder):
        raise BadInputError(f"{folder}: not a folder")
    found = {main_language: (f"{QUERIES}.csv", f"{CORPUS}.csv")}
    for name in sorted(os.listdir(folder)):
        m = _LANG_FILE.match(name)
        if m:
            found[m.group(1)] = (name, f"{CORPUS}_{m.group(1)}.csv")
    sets = {}
    for lang, (queries, corpus) in found.items():
        q, c = os.path.join(folder, queries), os.path.join(folder, corpus)
        if not os.path.isfile(q) or not os.path.isfile(c):
            missing = q if not os.path.isfile(q) else c
            raise BadInputError(f"{folder}: {os.path.basename(missing)} not found (the {lang} "
                                "retrieval set needs its queries and its corpus)")
        sets[lang] = read_retrieval_set(q, c, id_column=id_column, what=f"{lang} queries")
    return sets


def concept_part(concept_id, validation_share=0.5):
    """``"validation"`` or ``"test"`` for one concept id (a stable hash of it)."""
    digest = hashlib.sha256(str(concept_id).encode("utf-8")).digest()
    return PARTS[0] if int.from_bytes(digest[:8], "big") / 2**64 < validation_share else PARTS[1]


def concept_split(sets, part, validation_share=0.5):
    """The retrieval sets with only the queries of ``part``'s concepts (the corpora whole: a
    query still ranks every concept).  A query with several ids goes by its first id."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS} (got {part!r})")
    out = {}
    for lang, s in sets.items():
        first = {}
        for text, cid in zip(s.queries, s.query_ids):
            first.setdefault(text, cid)
        rows = [i for i, text in enumerate(s.queries)
                if concept_part(first[text], validation_share) == part]
        out[lang] = RetrievalSet([s.queries[i] for i in rows], [s.query_ids[i] for i in rows],
                                 s.corpus_labels, s.corpus_ids)
    return out


def evaluate_languages(model, sets, batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """``{"QL->CL": {"n", "corpus", "top1", "top5", "top10", "mrr"}}`` for every query
    language QL and corpus language CL of ``sets`` (``{lang: RetrievalSet}``)."""
    if not sets:
        raise BadInputError("no retrieval sets to evaluate")
    texts = {}
    grouped = {}
    for lang, s in sets.items():
        if len(s.corpus_labels) != len(s.corpus_ids):
            raise ValueError(f"{lang}: corpus_labels and corpus_ids differ in length")
        grouped[lang] = group_queries(s.queries, s.query_ids)
        for t in (*grouped[lang][0], *s.corpus_labels):
            texts.setdefault(t, len(texts))
    rows = encode(model, list(texts), batch_size, progress, "Texts")
    result = {}
    for ql, (queries, gold) in grouped.items():
        if not queries:
            continue
        q = rows[[texts[t] for t in queries]]
        for cl, s in sets.items():
            known = set(s.corpus_ids)
            keep = [i for i, ids in enumerate(gold) if any(c in known for c in ids)]
            if not keep:
                continue
            c = rows[[texts[t] for t in s.corpus_labels]]
            result[f"{ql}->{cl}"] = evaluate_embeddings(
                q[keep], [gold[i] for i in keep], c, list(s.corpus_ids))
    return result
