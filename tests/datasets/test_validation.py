"""The validation split carved from the training concepts: three disjoint sets of concepts."""

import pytest

from domain_tune.datasets.taxonomy_pairs import build_pairs
from domain_tune.datasets.validation import carve_validation, concept_keys, drop_texts
from tests.datasets.toy_taxonomy import all_label_keys, texts_of


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


def test_drop_texts_matches_label_keys():
    import pandas as pd

    frame = pd.DataFrame({"base": ["Line  Cook", "chef"], "ref": ["cook", "baker"],
                          "negative": ["", "head chef"]})
    assert drop_texts(frame, {"line cook"})["base"].tolist() == ["chef"]
    assert len(drop_texts(frame, {"head chef"})) == 2  # base and ref only, by default
    assert len(drop_texts(frame, {"head chef"}, ("base", "ref", "negative"))) == 1
