"""Hard-negative mining: which candidate each positive pair gets, on hand-made embeddings."""

import numpy as np
import pytest

from domain_tune.datasets.mining import mine_negatives
from domain_tune.errors import BadInputError

# 2-d directions: the angle of each text on the unit circle (degrees)
ANGLES = {
    "line cook": 0, "cook": 5, "chef": 10, "prep cook": 3, "sous chef": 12,
    "baker": 40, "pastry baker": 38, "welder": 180, "pipe welder": 178, "bricklayer": 200,
}


def embed(texts):
    rad = np.deg2rad([ANGLES[t.lower()] for t in texts])
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_nearest_non_positive_candidate_with_depth_1():
    base = ["line cook", "prep cook", "pastry baker", "pipe welder", "line cook"]
    ref = ["chef", "cook", "baker", "welder", "bricklayer"]
    sim = [1.0, 1.0, 1.0, 1.0, 0.5]
    neg = mine_negatives(base, ref, sim, embed, depth=1)
    # candidates: chef, cook, baker, welder (refs of positives); bricklayer is no candidate
    assert neg == ["cook", "chef", "chef", "baker", ""]


def test_positives_of_the_same_base_and_the_base_itself_are_never_negatives():
    base = ["line cook", "line cook", "Chef"]
    ref = ["cook", "chef", "sous chef"]
    sim = [1.0, 1.0, 1.0]
    for seed in range(5):
        neg = mine_negatives(base, ref, sim, embed, depth=3, seed=seed)
        assert neg[0] == neg[1] and neg[0] not in ("cook", "chef")  # both rows: one anchor
        assert neg[2] not in ("sous chef", "chef")  # "Chef" is the candidate "chef" (case-folded)


def test_depth_draws_among_the_best_and_the_seed_decides():
    base, ref = ["line cook", "welder"], ["prep cook", "baker"]
    sim = [1.0, 1.0]
    extra = {"cook", "chef", "sous chef", "pastry baker", "pipe welder"}
    base += sorted(extra)
    ref += ["bricklayer"] * len(extra)
    sim += [0.5] * len(extra)
    draws = {mine_negatives(base, ref, sim, embed, depth=1, seed=s)[0] for s in range(10)}
    assert draws == {"baker"}  # the only other candidate
    assert mine_negatives(base, ref, sim, embed, depth=2, seed=3) == \
        mine_negatives(base, ref, sim, embed, depth=2, seed=3)


def test_sampling_stays_within_depth():
    names = ["cook", "chef", "sous chef", "baker", "welder", "bricklayer"]
    base = ["line cook"] + [n for n in names if n != "cook"]
    ref = ["cook"] + names[1:][::-1]  # every name is a ref of some positive
    sim = [1.0] * len(base)
    seen = {mine_negatives(base, ref, sim, embed, depth=2, seed=s)[0] for s in range(30)}
    assert seen == {"chef", "sous chef"}  # the two nearest to "line cook" after "cook"


@pytest.mark.parametrize("sim, depth, message", [
    ([0.5, 0.7], 3, "no positive pairs"),
    ([1.0, 1.0], 0, "--depth must be at least 1"),
])
def test_bad_input(sim, depth, message):
    with pytest.raises(BadInputError, match=message):
        mine_negatives(["cook", "chef"], ["baker", "welder"], sim, embed, depth=depth)


def test_a_single_distinct_ref_cannot_be_mined():
    with pytest.raises(BadInputError, match="fewer than two distinct candidate texts"):
        mine_negatives(["cook", "chef"], ["baker", "Baker"], [1.0, 1.0], embed)


def test_candidates_given():
    base, ref, sim = ["line cook", "prep cook"], ["chef", "cook"], [1.0, 1.0]
    neg = mine_negatives(base, ref, sim, embed, depth=1, candidates=["welder", "baker", "cook"])
    assert neg == ["cook", "baker"]  # "cook" is a positive of "prep cook" only


def test_several_negatives_per_pair_are_distinct_and_nearest():
    from domain_tune.datasets.mining import mine_negative_columns

    names = ["cook", "chef", "sous chef", "baker", "welder", "bricklayer"]
    base = ["line cook"] + [n for n in names if n != "cook"]
    ref = ["cook"] + names[1:][::-1]
    sim = [1.0] * len(base)
    for seed in range(10):
        cols = mine_negative_columns(base, ref, sim, embed, depth=3, seed=seed, per_pair=3)
        assert len(cols) == 3 and all(len(c) == len(base) for c in cols)
        # "line cook": the three nearest after its own positive "cook", in a seeded order
        assert {c[0] for c in cols} == {"chef", "sous chef", "baker"}
        for row in zip(*cols):
            assert len(set(row)) == 3
    # per_pair=1 draws exactly what mine_negatives draws
    one = mine_negative_columns(base, ref, sim, embed, depth=2, seed=4, per_pair=1)
    assert one == [mine_negatives(base, ref, sim, embed, depth=2, seed=4)]


def test_fewer_candidates_than_asked_leave_empty_cells():
    from domain_tune.datasets.mining import mine_negative_columns

    cols = mine_negative_columns(["line cook", "welder"], ["cook", "baker"], [1.0, 1.0], embed,
                                 depth=3, per_pair=2)
    # two candidates (cook, baker): each anchor has one non-positive left
    assert cols == [["baker", "cook"], ["", ""]]
    with pytest.raises(BadInputError, match="--per-pair 4 exceeds the --depth 3"):
        mine_negative_columns(["a"], ["b"], [1.0], embed, depth=3, per_pair=4)


def test_taxonomy_candidates_leave_out_every_text_that_must_stay_out_of_training(toy):
    from domain_tune.datasets.mining import negative_candidates
    from domain_tune.datasets.taxonomy_pairs import build_pairs, choose_heldout

    # c04 (alternative label "data analyst") held out, c02 (preferred label "data analyst") not
    seed = next(s for s in range(200) if "c04" in choose_heldout(toy.ids, 0.25, s)
                and "c02" not in choose_heldout(toy.ids, 0.25, s))
    strict = build_pairs(toy, holdout=0.25, seed=seed)
    aware = build_pairs(toy, holdout=0.25, seed=seed, corpus_aware=True)
    label_of = dict(zip(toy.ids, toy.labels))
    training = [label_of[c] for c in toy.ids if c not in strict.heldout_ids]
    assert negative_candidates(strict) == [t for t in training if t != "data analyst"]
    assert negative_candidates(aware) == [t for t in toy.labels if t != "data analyst"]
