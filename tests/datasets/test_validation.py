"""The validation split carved from the training concepts: three disjoint sets of concepts."""

import pytest

from domain_tune.datasets.taxonomy import read_esco, read_translation
from domain_tune.datasets.taxonomy_pairs import build_pairs
from domain_tune.datasets.validation import carve_validation, concept_keys, drop_texts
from tests.datasets.toy_taxonomy import (
    all_label_keys, multilingual_label_keys, texts_of, write_multilingual,
)


@pytest.mark.parametrize("seed", range(6))
def test_no_text_of_a_test_or_validation_concept_is_trained_on(toy, seed):
    outer = build_pairs(toy, holdout=0.25, seed=seed)
    inner = carve_validation(toy, outer.heldout_ids, 0.25, seed)
    test, val = set(outer.heldout_ids), set(inner.heldout_ids)
    assert len(test) == 3 and len(val) == 2 and not test & val
    trained = texts_of(inner.train)
    for cid in test | val:
        assert not trained & all_label_keys(cid), cid
    # the validation queries are alternative labels of the validation concepts only
    id_col = inner.queries.columns[1]
    assert set(inner.queries[id_col]) <= val
    # hard negatives may not be drawn from a test concept's text either
    assert concept_keys(toy, test) <= set(inner.excluded_keys)


def test_concept_keys_cover_every_language(tmp_path):
    paths = write_multilingual(tmp_path)
    taxonomy = read_esco(paths["en"])
    assert concept_keys(taxonomy, {"c2"}) == {"chef", "head chef", "executive chef"}
    for language in ("de", "fr"):
        taxonomy = read_translation(taxonomy, language, paths[language], "conceptUri",
                                    "preferredLabel", "altLabels")
    for cid in ("c1", "c2", "c3", "c4"):  # c4 has no German row, c3 no French one
        assert concept_keys(taxonomy, {cid}) == multilingual_label_keys(cid)
    assert "" not in concept_keys(taxonomy, {"c4"})


@pytest.mark.parametrize("seed", range(4))
def test_validation_of_a_multilingual_taxonomy_trains_on_no_test_label_in_any_language(tmp_path, seed):
    paths = write_multilingual(tmp_path)
    taxonomy = read_esco(paths["en"])
    for language in ("de", "fr"):
        taxonomy = read_translation(taxonomy, language, paths[language], "conceptUri",
                                    "preferredLabel", "altLabels")
    outer = build_pairs(taxonomy, holdout=0.25, seed=seed)
    inner = carve_validation(taxonomy, outer.heldout_ids, 0.34, seed)
    trained = texts_of(inner.train)
    for cid in set(outer.heldout_ids) | set(inner.heldout_ids):
        assert not trained & multilingual_label_keys(cid), cid
    assert concept_keys(taxonomy, outer.heldout_ids) <= set(inner.excluded_keys)
    assert set(inner.language_queries) == {"de", "fr"}  # validation queries in every language


def test_drop_texts_matches_label_keys():
    import pandas as pd

    frame = pd.DataFrame({"base": ["Line  Cook", "chef"], "ref": ["cook", "baker"],
                          "negative": ["", "head chef"]})
    assert drop_texts(frame, {"line cook"})["base"].tolist() == ["chef"]
    assert len(drop_texts(frame, {"head chef"})) == 2  # base and ref only, by default
    assert len(drop_texts(frame, {"head chef"}, ("base", "ref", "negative"))) == 1
