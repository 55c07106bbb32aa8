"""The quality benchmark with labels in several languages: the retrieval sets it measures on."""

from domain_tune.datasets.taxonomy import read_esco, read_translation
from domain_tune.datasets.taxonomy_pairs import build_pairs
from domain_tune.datasets.validation import carve_validation
from scripts import bench_quality as bq
from tests.datasets.toy_taxonomy import MULTI, write_multilingual


def test_validation_and_test_sets_in_every_language_rank_the_whole_corpus(tmp_path):
    paths = write_multilingual(tmp_path)
    taxonomy = read_esco(paths["en"])
    for language in ("de", "fr"):
        taxonomy = read_translation(taxonomy, language, paths[language], "conceptUri",
                                    "preferredLabel", "altLabels")
    outer = build_pairs(taxonomy, holdout=0.25, seed=1)
    inner = carve_validation(taxonomy, outer.heldout_ids, 0.34, 1)
    for queries, held in ((outer, outer.heldout_ids), (inner, inner.heldout_ids)):
        sets = bq.pairset_retrieval_sets("en", queries, outer)
        assert list(sets) == ["en", "de", "fr"]
        for lang, s in sets.items():
            rows = MULTI[lang]
            labelled = [r[0] for r in rows]
            # every concept labelled in the language is in its corpus, held out or not
            assert sorted(s.corpus_ids) == sorted(labelled)
            assert set(s.query_ids) <= set(held)
        assert sets["en"].queries == queries.queries.iloc[:, 0].tolist()
    assert not set(outer.heldout_ids) & set(inner.heldout_ids)
