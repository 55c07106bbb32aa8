"""Domain retrieval across languages on a hand-made three-language toy set, and on real weights."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.evaluation.crosslingual import (
    PARTS, concept_part, concept_split, evaluate_languages, language_sets,
)

# Three concepts; every label is a point on the unit circle (degrees).  The French corpus is
# turned by +40 degrees and the German one by -40, so the language of the corpus matters.
CORPUS = {
    "en": {"cat": ("c1", 0), "dog": ("c2", 120), "bird": ("c3", 240)},
    "fr": {"chat": ("c1", 40), "chien": ("c2", 160), "oiseau": ("c3", 280)},
    "de": {"Katze": ("c1", -40), "Hund": ("c2", 80), "Vogel": ("c3", 200)},
}
QUERIES = {"en": ("kitty", 10), "fr": ("minou", 70), "de": ("Mieze", -30)}  # each of c1
# Rank of c1 for each query language -> corpus language, worked out by hand from the angles
# between the query and each label (the smallest angle ranks first):
RANKS = {
    "en->en": 1,  # 10 vs 0 (10), 120 (110), 240 (130)
    "en->fr": 1,  # 10 vs 40 (30), 160 (150), 280 (90)
    "en->de": 1,  # 10 vs -40 (50), 80 (70), 200 (170)
    "fr->en": 2,  # 70 vs 0 (70), 120 (50): dog is closer
    "fr->fr": 1,  # 70 vs 40 (30), 160 (90), 280 (150)
    "fr->de": 2,  # 70 vs -40 (110), 80 (10): Hund is closer
    "de->en": 1,  # -30 vs 0 (30), 120 (150), 240 (90)
    "de->fr": 2,  # -30 vs 40 (70), 280 (50): oiseau is closer
    "de->de": 1,  # -30 vs -40 (10)
}


class AngleModel:
    """A model of strings: each known text's point on the unit circle (plus a zero third axis)."""

    def __init__(self):
        angles = {q: a for q, a in QUERIES.values()}
        angles |= {t: a for labels in CORPUS.values() for t, (_, a) in labels.items()}
        keys = list(angles)
        r = np.deg2rad([angles[k] for k in keys])
        self.rows = tf.constant(np.stack([np.cos(r), np.sin(r), np.zeros_like(r)], 1), tf.float32)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.range(len(keys), dtype=tf.int64)), -1)

    def __call__(self, inputs):
        return tf.gather(self.rows, self.table.lookup(inputs))


def write_folder(folder):
    folder.mkdir()
    for lang, labels in CORPUS.items():
        suffix = "" if lang == "en" else f"_{lang}"
        pd.DataFrame({"label": list(labels), "conceptUri": [c for c, _ in labels.values()]}).to_csv(
            folder / f"corpus{suffix}.csv", index=False)
        pd.DataFrame({"query": [QUERIES[lang][0]], "conceptUri": ["c1"]}).to_csv(
            folder / f"heldout_queries{suffix}.csv", index=False)
    return folder


def test_every_language_pair_by_hand(tmp_path):
    sets = language_sets(write_folder(tmp_path / "pairs"))
    assert list(sets) == ["en", "de", "fr"]  # the main language first, then by file name
    result = evaluate_languages(AngleModel(), sets)
    assert set(result) == set(RANKS)
    for pair, rank in RANKS.items():
        assert result[pair]["n"] == 1 and result[pair]["corpus"] == 3
        assert result[pair]["top1"] == (1.0 if rank == 1 else 0.0), pair
        assert result[pair]["mrr"] == pytest.approx(1 / rank), pair


def test_a_missing_corpus_file_is_named(tmp_path):
    folder = write_folder(tmp_path / "pairs")
    (folder / "corpus_fr.csv").unlink()
    with pytest.raises(BadInputError, match="corpus_fr.csv not found"):
        language_sets(folder)
    with pytest.raises(BadInputError, match="not a folder"):
        language_sets(tmp_path / "nowhere")


def test_concept_split_is_a_stable_partition_by_concept():
    ids = [f"concept-{i}" for i in range(400)]
    parts = [concept_part(i) for i in ids]
    assert parts == [concept_part(i) for i in ids]  # stable
    share = parts.count("validation") / len(parts)
    assert 0.4 < share < 0.6
    from domain_tune.datasets.retrieval_set import RetrievalSet

    sets = {lang: RetrievalSet([f"{lang} {i}" for i in ids] + [f"{lang} shared"],
                               ids + [ids[0]], ["x"], ["y"]) for lang in ("en", "fr")}
    split = {part: concept_split(sets, part) for part in PARTS}
    for lang in sets:
        got = split["validation"][lang].query_ids + split["test"][lang].query_ids
        assert sorted(got) == sorted(sets[lang].query_ids)  # every query in exactly one part
        for part in PARTS:  # one concept, one part, in every language
            assert {concept_part(c) for c in split[part][lang].query_ids} == {part}
    assert [q for q in split["validation"]["en"].queries if q.startswith("en ")] == \
        [q.replace("fr", "en", 1) for q in split["validation"]["fr"].queries if q.startswith("fr ")]
    with pytest.raises(ValueError):
        concept_split(sets, "train")


def test_french_queries_on_real_weights(use_m3):
    """USE-m3 on a small French subset of ESCO: French job titles find their concept among
    English and French labels far above chance, and French labels match French best."""
    from tests.conftest import shared_path

    columns = ["conceptUri", "preferredLabel", "altLabels"]
    en = pd.read_csv(shared_path("esco", "occupations_en.csv"), usecols=columns)
    fr = pd.read_csv(shared_path("esco", "occupations_fr.csv"), usecols=columns)
    both = en.merge(fr, on="conceptUri", suffixes=("_en", "_fr"))
    both = both[both["altLabels_fr"].fillna("").str.strip().ne("")].sample(60, random_state=0)
    alt_fr = [str(a).split("\n")[0] for a in both["altLabels_fr"]]
    from domain_tune.datasets.retrieval_set import RetrievalSet

    ids = both["conceptUri"].tolist()
    sets = {"en": RetrievalSet(both["preferredLabel_en"].tolist(), ids, both["preferredLabel_en"].tolist(), ids),
            "fr": RetrievalSet(alt_fr, ids, both["preferredLabel_fr"].tolist(), ids)}
    result = evaluate_languages(use_m3, sets)
    assert result["en->en"]["top1"] == 1.0  # a preferred label finds itself
    assert result["fr->fr"]["top1"] > 0.8 and result["fr->en"]["top1"] > 0.6  # chance: 1/60
    assert result["en->fr"]["top1"] > 0.7
    assert result["fr->fr"]["mrr"] >= result["fr->en"]["mrr"] - 0.05
