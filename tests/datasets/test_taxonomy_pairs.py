"""The taxonomy pair builder on a small synthetic, ESCO-shaped taxonomy."""

import csv

import numpy as np
import pandas as pd
import pytest

from domain_tune.datasets.mining import mine_negatives, negative_candidates
from domain_tune.datasets.pairs import PairsWarning
from domain_tune.datasets.pairs_folder import render_readme
from domain_tune.datasets.taxonomy import (
    label_key, only_groups, read_esco, read_taxonomy, read_translation,
)
from domain_tune.datasets.taxonomy_pairs import KINDS, angular_score, build_pairs, choose_heldout
from domain_tune.errors import BadInputError
from tests.datasets.toy_taxonomy import (
    MULTI, SHARED, TOY, all_label_keys, multilingual_label_keys, texts_of, write_multilingual,
    write_toy_taxonomy,
)


def test_scores_are_the_angular_similarities_of_the_cosine_targets():
    assert angular_score(1.0) == 1.0
    assert angular_score(0.7) == pytest.approx(0.7468166888933649, abs=1e-15)
    assert round(angular_score(0.7), 4) == 0.7468
    assert angular_score(0.0) == 0.5


def test_pairs_follow_the_scheme(toy):
    ps = build_pairs(toy, holdout=0.0, seed=3, negatives=2, related=2)
    assert list(ps.train.columns) == ["base", "ref", "similarity"]
    pref = dict(zip(toy.labels, toy.groups))
    alt_owner = {a: toy.labels[i] for i in range(len(toy)) for a in toy.synonyms[i]}
    related = angular_score(0.7)
    kinds = {1.0: 0, related: 0, 0.5: 0}
    for base, ref, sim in ps.train.itertuples(index=False):
        kinds[sim] += 1  # only the three scores occur
        if sim == 1.0:  # an alternative label and its own preferred label
            assert alt_owner[base] == ref
        elif sim == 0.5:  # an alternative label and a concept of another group
            assert ref in pref and pref[alt_owner[base]] != pref[ref]
        else:  # two preferred labels of one group
            assert base in pref and ref in pref and base != ref and pref[base] == pref[ref]
    assert kinds[1.0] == 24 - 3  # every unshared alternative label once
    assert kinds[0.5] == 2 * kinds[1.0]
    assert kinds[related] > 0
    assert ps.stats["pairs"]["positive"] == kinds[1.0]
    assert ps.stats["shared_alternative_labels"] == 3
    # shared labels are neither pairs nor queries; no pair joins a text with itself
    assert not SHARED & {label_key(a) for a in ps.train["base"][ps.train.similarity == 1.0]}
    assert not (ps.train["base"].str.casefold() == ps.train["ref"].str.casefold()).any()


def test_synonym_pairs(toy):
    plain = build_pairs(toy, holdout=0.0, seed=3)
    ps = build_pairs(toy, holdout=0.0, seed=3, synonyms=2)
    owner = {a: i for i in range(len(toy)) for a in toy.synonyms[i]}
    extra = ps.train.merge(plain.train, how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"]
    assert len(extra) == ps.stats["pairs"]["synonym"] > 0
    per_concept = {}
    for base, ref, sim in extra[["base", "ref", "similarity"]].itertuples(index=False):
        assert sim == 1.0 and owner[base] == owner[ref]  # two labels of one concept
        assert not SHARED & {label_key(base), label_key(ref)}
        per_concept[owner[base]] = per_concept.get(owner[base], 0) + 1
    assert max(per_concept.values()) == 2  # at most --synonym-pairs per concept
    assert per_concept[0] == 2  # data scientist: 3 unshared alternative labels, 3 couples
    # without synonym pairs nothing else changes
    assert ps.stats["pairs"]["positive"] == plain.stats["pairs"]["positive"]
    assert "two alternative labels of one concept" in render_readme(ps)
    with pytest.raises(BadInputError, match="--synonym-pairs"):
        build_pairs(toy, synonyms=-1)


def test_custom_cosines_and_no_negatives(toy):
    ps = build_pairs(toy, holdout=0.0, negatives=0, related=1,
                     cosines={"positive": 0.9, "related": 0.5})
    assert set(ps.train.similarity.round(6)) == {round(angular_score(0.9), 6),
                                              round(angular_score(0.5), 6)}
    assert ps.stats["pairs"]["unrelated"] == 0
    assert ps.params["scores"]["unrelated"] == 0.5


@pytest.mark.parametrize("holdout", [0.2, 0.25, 0.5])
@pytest.mark.parametrize("seed", range(6))
def test_holdout_leaks_nothing(toy, holdout, seed):
    ps = build_pairs(toy, holdout=holdout, seed=seed, negatives=2, related=3, descriptions=True,
                     synonyms=2)
    assert len(ps.heldout_ids) == round(holdout * 12)
    in_train = texts_of(ps.train)
    for cid in ps.heldout_ids:
        assert not all_label_keys(cid) & in_train, cid
        assert label_key(toy.descriptions[toy.ids.index(cid)]) not in in_train
    # the queries are the unshared alternative labels of the held-out concepts
    gold = dict(zip(ps.queries["query"], ps.queries["conceptUri"]))
    assert set(gold.values()) <= set(ps.heldout_ids)
    assert not SHARED & {label_key(q) for q in gold}
    expected = sum(len([a for a in toy.synonyms[toy.ids.index(c)] if label_key(a) not in SHARED])
                   for c in ps.heldout_ids)
    assert len(gold) == expected
    # the corpus is every concept's preferred label
    assert list(ps.corpus.columns) == ["label", "conceptUri"]
    assert ps.corpus["conceptUri"].tolist() == toy.ids
    assert ps.stats["heldout_concepts"] + ps.stats["training_concepts"] == 12


def test_holdout_everything_is_a_benchmark_of_the_whole_taxonomy(toy):
    with pytest.warns(PairsWarning, match=r"every concept is held out \(--holdout 1\): train.csv "
                                          r"has no pairs; the queries and corpus make a "
                                          r"retrieval benchmark of the base model$"):
        ps = build_pairs(toy, holdout=1.0)
    assert len(ps.train) == 0 and list(ps.train.columns) == ["base", "ref", "similarity"]
    assert len(ps.queries) == 24 - 3 and ps.stats["training_concepts"] == 0
    assert build_pairs(toy, holdout=0.0).queries.empty


def test_a_heldout_alternative_label_that_is_a_training_preferred_label_is_dropped(toy):
    # c04's alternative label "data analyst" is c02's preferred label
    seed = next(s for s in range(200)
                if "c04" in choose_heldout(toy.ids, 0.25, s)
                and "c02" not in choose_heldout(toy.ids, 0.25, s))
    ps = build_pairs(toy, holdout=0.25, seed=seed)
    assert "data analyst" not in texts_of(ps.train)
    assert ps.stats["dropped_heldout_overlap"] > 0


def test_deterministic_with_seed(toy, toy_path, tmp_path):
    a = build_pairs(toy, holdout=0.25, seed=7, descriptions=True)
    b = build_pairs(read_esco(toy_path), holdout=0.25, seed=7, descriptions=True)
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.queries, b.queries)
    assert a.heldout_ids == b.heldout_ids
    others = [build_pairs(toy, holdout=0.25, seed=s) for s in (8, 9)]
    assert any(o.heldout_ids != a.heldout_ids for o in others)
    # the split depends on the ids, not on the order of the rows
    shuffled = write_toy_taxonomy(tmp_path / "shuffled.csv", TOY[::-1])
    assert build_pairs(read_esco(shuffled), holdout=0.25, seed=7).heldout_ids == a.heldout_ids


def test_descriptions(toy):
    ps = build_pairs(toy, holdout=0.0, negatives=1, descriptions=True)
    k = ps.stats["pairs"]
    assert k["description"] == 12 and k["description_unrelated"] == 12
    own = ps.train[ps.train.ref == "Data scientists find and interpret rich data sources."]
    assert set(zip(own.base, own.similarity)) >= {("data scientist", 1.0)}
    no_desc = read_taxonomy(  # a taxonomy without a description column
        toy.path, "conceptUri", "preferredLabel", "altLabels", "iscoGroup")
    with pytest.raises(BadInputError, match="--descriptions"):
        build_pairs(no_desc, descriptions=True)


def test_max_pairs_and_only_groups(toy):
    full = build_pairs(toy, holdout=0.0)
    few = build_pairs(toy, holdout=0.0, max_pairs=5)
    assert len(few.train) == 5 and few.stats["dropped_max_pairs"] == len(full.train) - 5
    cooks = only_groups(toy, ["51"])
    assert cooks.ids == ["c08", "c09", "c10"] and cooks.stats["alternative_labels"] == 6
    with pytest.raises(BadInputError, match="--only-groups 7"):
        only_groups(toy, ["7"])


def test_without_groups_there_are_no_related_pairs(toy_path):
    flat = read_taxonomy(toy_path, "conceptUri", "preferredLabel", "altLabels")
    ps = build_pairs(flat, holdout=0.0)
    assert ps.stats["pairs"]["related"] == 0 and ps.stats["pairs"]["unrelated"] > 0


@pytest.mark.parametrize("holdout", [-0.1, 1.5, float("nan")])
def test_bad_holdout(toy, holdout):
    with pytest.raises(BadInputError, match="--holdout"):
        build_pairs(toy, holdout=holdout)


@pytest.mark.parametrize("kwargs, option", [
    ({"negatives": -1}, "--negatives"), ({"related": -2}, "--related"),
    ({"max_pairs": 0}, "--max-pairs"), ({"seed": -1}, "--seed"), ({"cosines": {"related": 1.5}}, "--related-cosine"),
    ({"cosines": {"positive": 0.1, "unrelated": 0.5}}, "must order positive > unrelated"),
    ({"cosines": {"related": -0.5}}, "related between"),
])
def test_bad_parameters(toy, kwargs, option):
    with pytest.raises(BadInputError, match=option):
        build_pairs(toy, **kwargs)


@pytest.mark.shared_data
def test_real_esco_counts():
    from tests.conftest import shared_path

    esco = read_esco(shared_path("esco", "occupations_en.csv"))
    assert esco.stats["concepts"] == 2942
    assert esco.stats["alternative_labels_raw"] == 29997
    ps = build_pairs(esco, holdout=0.2, seed=0)
    assert ps.stats["heldout_concepts"] == 588 and len(ps.corpus) == 2942
    in_train = texts_of(ps.train)
    heldout = set(ps.heldout_ids)
    for i, cid in enumerate(esco.ids):
        if cid in heldout:
            assert label_key(esco.labels[i]) not in in_train
            assert not {label_key(a) for a in esco.synonyms[i]} & in_train
    assert np.isin(ps.train.similarity.unique(), [1.0, angular_score(0.7), 0.5]).all()


def test_more_negatives_than_concepts_pairs_each_text_with_every_allowed_concept(toy):
    def unrelated(negatives):
        train = build_pairs(toy, holdout=0.0, seed=3, negatives=negatives).train
        rows = train[train.similarity == 0.5]
        return {base: set(group.ref) for base, group in rows.groupby("base")}, len(rows)

    everything, n = unrelated(10 * len(toy))  # more than there are concepts
    huge, n_huge = unrelated(10**11)  # was an array of 10^11 indices
    assert huge == everything and n_huge == n
    pref = dict(zip(toy.labels, toy.groups))
    alt_owner = {a: toy.groups[i] for i in range(len(toy)) for a in toy.synonyms[i]}
    for base, refs in huge.items():  # every concept of another group, once
        assert refs == {label for label, group in pref.items() if group != alt_owner[base]}


def test_a_taxonomy_that_yields_nothing_to_train_or_query_warns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,label,syn,group\n" + "".join(f"{i},label {i},,{i}\n" for i in range(10)))
    taxonomy = read_taxonomy(path, id_column="id", label_column="label",
                             synonyms_column="syn", group_column="group")
    with pytest.warns(PairsWarning) as caught:
        ps = build_pairs(taxonomy, holdout=0.2)
    messages = " ".join(str(w.message) for w in caught)
    assert "no training pairs" in messages and "heldout_queries.csv is empty" in messages
    assert ps.train.empty and ps.queries.empty


# --- the corpus-aware setting --------------------------------------------------


def test_corpus_aware_adds_the_corpus_side_of_every_concept(toy):
    strict = build_pairs(toy, holdout=0.25, seed=2)
    aware = build_pairs(toy, holdout=0.25, seed=2, corpus_aware=True)
    assert strict.params["setting"] == "strict" and aware.params["setting"] == "corpus-aware"
    rows = lambda ps: set(ps.train.itertuples(index=False, name=None))  # noqa: E731
    assert rows(strict) < rows(aware)  # the strict pairs, and more
    pd.testing.assert_frame_equal(strict.queries, aware.queries)
    pd.testing.assert_frame_equal(strict.corpus, aware.corpus)
    k = aware.stats["pairs"]
    assert {kind: k[kind] for kind in KINDS} == strict.stats["pairs"]
    assert k["corpus_description"] == 12  # every concept has a description, none is a held-out alt
    extra = rows(aware) - rows(strict)
    assert len(extra) == k["corpus_related"] + k["corpus_description"] + k["corpus_description_unrelated"]
    label_of = dict(zip(toy.ids, toy.labels))
    group_of = {toy.labels[i]: toy.groups[i] for i in range(len(toy))}
    description_of = {toy.labels[i]: toy.descriptions[i] for i in range(len(toy))}
    heldout_labels = {label_of[c] for c in aware.heldout_ids}
    for base, ref, sim in extra:
        assert base in group_of  # a preferred label
        if sim == 1.0:
            assert ref == description_of[base]
        elif sim == 0.5:
            assert ref in description_of.values() and group_of[base] != next(
                g for lab, g in group_of.items() if description_of[lab] == ref)
        else:  # related: a held-out concept with a concept of its group
            assert base in heldout_labels and group_of[ref] == group_of[base] and ref != base
    # the held-out concepts' preferred labels and descriptions are trained on ...
    texts = texts_of(aware.train)
    for cid in aware.heldout_ids:
        i = toy.ids.index(cid)
        assert label_key(toy.labels[i]) in texts or label_key(toy.labels[i]) in SHARED
        assert label_key(toy.descriptions[i]) in texts
        # ... their alternative labels never
        assert not {label_key(a) for a in toy.synonyms[i]} & texts
    readme = render_readme(aware)
    assert "Setting: **corpus-aware**" in readme
    assert f"| corpus-aware: preferred label, its description (every concept) | 1 | 1.0000 | 12 |" in readme
    assert "Setting: **strict**" in render_readme(strict)


def test_corpus_aware_with_descriptions_does_not_pair_a_training_description_twice(toy):
    plain = build_pairs(toy, holdout=0.25, seed=2, descriptions=True)
    aware = build_pairs(toy, holdout=0.25, seed=2, descriptions=True, corpus_aware=True)
    k = aware.stats["pairs"]
    assert k["description"] == plain.stats["pairs"]["description"] == 9  # the training concepts
    assert k["corpus_description"] == 3  # the held-out ones
    assert (aware.train.ref.isin(toy.descriptions) & (aware.train.similarity == 1.0)).sum() == 12
    assert "(every concept held out)" in render_readme(aware)


def test_corpus_aware_needs_a_corpus_side(toy_path):
    flat = read_taxonomy(toy_path, "conceptUri", "preferredLabel", "altLabels")  # no groups, no descriptions
    with pytest.raises(BadInputError, match="--corpus-aware: .* has neither descriptions nor groups"):
        build_pairs(flat, corpus_aware=True)
    grouped = read_taxonomy(toy_path, "conceptUri", "preferredLabel", "altLabels", "iscoGroup")
    ps = build_pairs(grouped, holdout=0.5, corpus_aware=True)  # groups only: related pairs only
    assert ps.stats["pairs"]["corpus_related"] > 0 and ps.stats["pairs"]["corpus_description"] == 0


WORDS = ["data", "analyst", "Chef", "cook", "head", "line", "engineer", "nurse", "Mayor", "clerk",
         "sales", "assistant", "senior", "junior", "pastry"]


def random_taxonomy(path, rng, n=40):
    """A taxonomy whose labels collide a lot: shared alternative labels, a preferred label that is
    another concept's alternative label, case and white-space variants, empty groups and descriptions."""

    def label():
        words = rng.choice(WORDS, size=rng.integers(1, 3))
        text = (" " * int(rng.integers(1, 3))).join(words)
        return text.upper() if rng.random() < 0.1 else text

    rows = []
    for i in range(n):
        alts = [label() for _ in range(rng.integers(0, 5))]
        group = "" if rng.random() < 0.1 else f"g{rng.integers(4)}"
        description = "" if rng.random() < 0.2 else f"concept {i} does {label()}."
        rows.append((f"id{i:03d}", label(), "\n".join(alts), group, description))
    rows = [r for k, r in enumerate(rows) if label_key(r[1]) not in {label_key(x[1]) for x in rows[:k]}]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "alts", "group", "description"])
        w.writerows(rows)
    return rows


@pytest.mark.filterwarnings("ignore::domain_tune.datasets.pairs.PairsWarning")
@pytest.mark.parametrize("trial", range(30))
def test_no_heldout_alternative_label_ever_enters_training(tmp_path, trial):
    """Property: on random taxonomies and hold-outs, in either setting, with every pair kind and
    mined negatives, no alternative label of a held-out concept is in any column of train.csv."""
    rng = np.random.default_rng(trial)
    rows = random_taxonomy(tmp_path / "t.csv", rng)
    taxonomy = read_taxonomy(tmp_path / "t.csv", "id", "label", "alts", "group", "description")
    options = dict(holdout=float(rng.uniform(0.05, 0.95)), seed=trial, negatives=int(rng.integers(0, 3)),
                   related=int(rng.integers(0, 4)), synonyms=int(rng.integers(0, 3)),
                   descriptions=bool(rng.integers(2)))
    strict = build_pairs(taxonomy, **options)
    aware = build_pairs(taxonomy, **options, corpus_aware=True)
    raw = {r[0]: r for r in rows}
    heldout_alts, heldout_texts = set(), set()
    for cid in aware.heldout_ids:
        own = label_key(raw[cid][1])  # an alternative label equal to it is the preferred label
        alts = {label_key(a) for a in raw[cid][2].split("\n") if a.strip()} - {own}
        heldout_alts |= alts
        heldout_texts |= alts | {label_key(raw[cid][1])}
    assert strict.heldout_ids == aware.heldout_ids
    assert set(strict.train.itertuples(index=False, name=None)) <= set(
        aware.train.itertuples(index=False, name=None))
    for ps, forbidden in ((strict, heldout_texts), (aware, heldout_alts)):
        if ps.stats["pairs"]["positive"]:  # mined negatives, from the texts the builder allows
            embed = lambda texts: np.random.default_rng(  # noqa: E731
                [sum(map(ord, t)) for t in texts]).normal(size=(len(texts), 4))
            ps.train = ps.train.assign(negative=mine_negatives(
                ps.train.base.tolist(), ps.train.ref.tolist(), ps.train.similarity.to_numpy(), embed,
                depth=3, seed=trial, candidates=negative_candidates(ps)))
        for column in ps.train.columns.drop("similarity"):
            leaked = {label_key(t) for t in ps.train[column]} & forbidden
            assert not leaked, (ps.params["setting"], column, leaked)
    # strict: not even a held-out description
    held_descriptions = {label_key(raw[c][4]) for c in strict.heldout_ids if raw[c][4]}
    training_texts = {label_key(raw[c][4]) for c in raw if c not in set(strict.heldout_ids)}
    assert not (held_descriptions - training_texts) & texts_of(strict.train)


# --- labels in more languages ------------------------------------------------------


def multilingual(tmp_path, languages=("de", "fr")):
    paths = write_multilingual(tmp_path, languages)
    taxonomy = read_esco(paths["en"])
    for language in languages:
        taxonomy = read_translation(taxonomy, language, paths[language], "conceptUri",
                                    "preferredLabel", "altLabels")
    return taxonomy


def test_multilingual_pairs_exactly(tmp_path):
    taxonomy = multilingual(tmp_path)
    ps = build_pairs(taxonomy, holdout=0.0, negatives=0, related=0)
    assert set(ps.train.itertuples(index=False, name=None)) == {(b, r, 1.0) for b, r in [
        # monolingual: each language's alternative labels with its preferred label
        ("line cook", "cook"), ("short-order cook", "cook"), ("head chef", "chef"),
        ("executive chef", "chef"), ("data expert", "data scientist"), ("registered nurse", "nurse"),
        ("Beikoch", "Koch"), ("Chefkoch", "Küchenchef"), ("Küchenmeister", "Küchenchef"),
        ("Data Scientist", "Datenwissenschaftler"), ("Datenexperte", "Datenwissenschaftler"),
        ("commis de cuisine", "cuisinier"), ("chef de cuisine", "chef"), ("infirmière", "infirmier"),
        # cross-lingual: alternative label with the English preferred label ("Data Scientist" is
        # "data scientist" itself; "chef de cuisine", "chef" is a French pair already) ...
        ("Beikoch", "cook"), ("Chefkoch", "chef"), ("Küchenmeister", "chef"),
        ("Datenexperte", "data scientist"), ("commis de cuisine", "cook"), ("infirmière", "nurse"),
        # ... and translations of the preferred labels ("chef", "chef" is no pair; "Datenwissenschaftler",
        # "data scientist" is the German pair with "Data Scientist")
        ("Koch", "cook"), ("Küchenchef", "chef"), ("cuisinier", "cook"), ("infirmier", "nurse"),
    ]}
    s = ps.stats
    assert s["pairs"] == {"positive": 14, "synonym": 0, "related": 0, "unrelated": 0, "description": 0,
                          "description_unrelated": 0, "cross_positive": 6, "translation": 4,
                          "cross_unrelated": 0}
    assert s["cross_lingual"] == {"de-en": {"cross_positive": 4, "translation": 2, "cross_unrelated": 0},
                                  "fr-en": {"cross_positive": 2, "translation": 2, "cross_unrelated": 0}}
    assert {lang: sum(t["pairs"].values()) for lang, t in s["languages"].items()} == {
        "en": 6, "de": 5, "fr": 3}
    assert s["languages"]["fr"]["shared_alternative_labels"] == 1  # "cuisinier"
    assert s["dropped_duplicates"] == 4
    assert ps.params["languages"] == ["en", "de", "fr"]
    # corpora per language: the concepts with a label in it
    assert ps.language_corpora["de"].values.tolist() == [
        ["Koch", "c1"], ["Küchenchef", "c2"], ["Datenwissenschaftler", "c3"]]
    assert ps.language_corpora["fr"].values.tolist() == [
        ["cuisinier", "c1"], ["chef", "c2"], ["infirmier", "c4"]]
    assert all(q.empty for q in ps.language_queries.values())


def test_multilingual_negatives_and_related_pairs(tmp_path):
    ps = build_pairs(multilingual(tmp_path), holdout=0.0, negatives=2, related=1)
    group = {row[0]: row[1] for row in MULTI["en"]}
    preferred, alternative = {}, {}  # text -> (language, concept)
    for language, rows in MULTI.items():
        for row in rows:
            label, alts = (row[2], row[3]) if language == "en" else (row[1], row[2])
            preferred[label, language] = row[0]
            for alt in alts.split("\n"):
                alternative[alt] = (language, row[0])
    rows = list(ps.train.itertuples(index=False, name=None))
    # related: cook and chef (the only group of two) in each language
    assert {frozenset((b, r)) for b, r, sim in rows if sim == angular_score(0.7)} == {
        frozenset(p) for p in [("cook", "chef"), ("Koch", "Küchenchef"), ("cuisinier", "chef")]}
    unrelated = [(b, r) for b, r, sim in rows if sim == 0.5]
    for base, ref in unrelated:  # an alternative label, a concept of another group labelled in
        language, cid = alternative[base]  # the alternative label's language or in English
        other = preferred.get((ref, language)) or preferred[ref, "en"]
        assert group[other] != group[cid]
    k = ps.stats["pairs"]
    assert k["unrelated"] > 0 and k["cross_unrelated"] > 0 and len(unrelated) == (
        k["unrelated"] + k["cross_unrelated"])
    for pair in ("de-en", "fr-en"):
        c = ps.stats["cross_lingual"][pair]
        assert 0 < c["cross_unrelated"] <= 2 * c["cross_positive"] + 2  # --negatives 2 per label


def heldout_seed(ids, fraction, wanted):
    return next(s for s in range(500) if choose_heldout(ids, fraction, s) == wanted)


def test_multilingual_holdout_covers_every_language(tmp_path):
    taxonomy = multilingual(tmp_path)
    seed = heldout_seed(taxonomy.ids, 0.25, {"c2"})
    ps = build_pairs(taxonomy, holdout=0.25, seed=seed, negatives=1, related=2)
    texts = texts_of(ps.train)
    assert multilingual_label_keys("c2") == {
        "chef", "head chef", "executive chef", "küchenchef", "chefkoch", "küchenmeister",
        "chef de cuisine", "cuisinier"}
    assert not multilingual_label_keys("c2") & texts
    # "cuisinier", c1's French label, is also c2's: c1's pairs with it are dropped, not the others
    rows = set(ps.train.itertuples(index=False, name=None))
    assert ("commis de cuisine", "cook", 1.0) in rows and ("cook", "chef") not in {r[:2] for r in rows}
    assert "cuisinier" not in texts and ps.stats["dropped_heldout_overlap"] > 0
    # held-out queries per language: c2's unshared alternative labels in that language
    assert ps.queries.values.tolist() == [["head chef", "c2"], ["executive chef", "c2"]]
    assert ps.language_queries["de"].values.tolist() == [["Chefkoch", "c2"], ["Küchenmeister", "c2"]]
    assert ps.language_queries["fr"].values.tolist() == [["chef de cuisine", "c2"]]
    assert ps.stats["languages"]["de"]["queries"] == 2
    # the corpora keep every concept, held-out ones included
    assert len(ps.corpus) == 4 and len(ps.language_corpora["de"]) == 3
    aware = build_pairs(taxonomy, holdout=0.25, seed=seed, negatives=1, related=2, corpus_aware=True)
    aware_texts = texts_of(aware.train)
    assert not multilingual_label_keys("c2", alternative_only=True) & aware_texts
    assert {"chef", "küchenchef"} <= aware_texts  # c2's preferred labels are corpus
    assert ("Küchenchef", "chef", 1.0) in set(aware.train.itertuples(index=False, name=None))
    assert aware.stats["cross_lingual"]["de-en"]["corpus_translation"] == 1
    readme = render_readme(aware)
    assert "| `heldout_queries_de.csv` | `query,conceptUri` | 2 |" in readme
    assert "| `corpus_fr.csv` | `label,conceptUri` | 3 |" in readme
    assert "--queries heldout_queries_fr.csv --corpus corpus_fr.csv" in readme
    assert "| de-en | " in readme and "in any language" in readme


def test_adding_a_language_changes_no_other_language(tmp_path):
    english = build_pairs(read_esco(write_multilingual(tmp_path, ())["en"]), holdout=0.25, seed=4)
    german = build_pairs(multilingual(tmp_path, ("de",)), holdout=0.25, seed=4)
    both = build_pairs(multilingual(tmp_path, ("de", "fr")), holdout=0.25, seed=4)
    pd.testing.assert_frame_equal(english.queries, both.queries)
    pd.testing.assert_frame_equal(german.language_queries["de"], both.language_queries["de"])
    rows = lambda ps: set(ps.train.itertuples(index=False, name=None))  # noqa: E731
    # the English and German pairs stay, except those that French labels make a held-out text
    french_heldout = {k for c in both.heldout_ids for k in multilingual_label_keys(c)}
    keep = {r for r in rows(german) if not {label_key(r[0]), label_key(r[1])} & french_heldout}
    assert keep <= rows(both) and rows(english) - rows(german) == set()


@pytest.mark.filterwarnings("ignore::domain_tune.datasets.pairs.PairsWarning")
@pytest.mark.parametrize("trial", range(20))
def test_no_heldout_label_in_any_language_enters_training(tmp_path, trial):
    """Property: random multilingual taxonomies whose labels collide within and across languages."""
    rng = np.random.default_rng(100 + trial)
    rows = random_taxonomy(tmp_path / "en.csv", rng, n=30)
    taxonomy = read_taxonomy(tmp_path / "en.csv", "id", "label", "alts", "group", "description")
    words = {"de": ["Koch", "chef", "Daten", "analyst", "Leiter", "Pflege", "Verkauf", "data"],
             "fr": ["cuisinier", "chef", "données", "analyst", "directeur", "infirmier", "vente"]}
    raw = {r[0]: {"en": (r[1], r[2])} for r in rows}
    for language, vocabulary in words.items():
        lines = ["id,label,alts"]
        for cid in raw:
            if rng.random() < 0.8:
                label, alts = (" ".join(rng.choice(vocabulary, size=rng.integers(1, 3)))
                               for _ in range(2))
                alts = "\n".join([alts] + list(rng.choice(vocabulary, size=rng.integers(0, 2))))
                raw[cid][language] = (label, alts)
                lines.append(f'{cid},{label},"{alts}"')
        (tmp_path / f"{language}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        taxonomy = read_translation(taxonomy, language, tmp_path / f"{language}.csv", "id", "label", "alts")
    options = dict(holdout=float(rng.uniform(0.1, 0.9)), seed=trial, negatives=int(rng.integers(0, 3)),
                   related=int(rng.integers(0, 3)), synonyms=int(rng.integers(0, 2)))
    for corpus_aware in (False, True):
        ps = build_pairs(taxonomy, **options, corpus_aware=corpus_aware)
        forbidden = set()
        for cid in ps.heldout_ids:
            for label, alts in raw[cid].values():
                alt_keys = {label_key(a) for a in alts.split("\n") if a.strip()} - {label_key(label)}
                forbidden |= alt_keys if corpus_aware else alt_keys | {label_key(label)}
        if ps.stats["pairs"]["positive"]:
            embed = lambda texts: np.random.default_rng(  # noqa: E731
                [sum(map(ord, t)) for t in texts]).normal(size=(len(texts), 4))
            ps.train = ps.train.assign(negative=mine_negatives(
                ps.train.base.tolist(), ps.train.ref.tolist(), ps.train.similarity.to_numpy(), embed,
                depth=3, seed=trial, candidates=negative_candidates(ps)))
        for column in ps.train.columns.drop("similarity"):
            assert not {label_key(t) for t in ps.train[column]} & forbidden, (corpus_aware, column)
        # every language's queries are held-out concepts' labels in that language
        for language, queries in ps.language_queries.items():
            assert set(queries.iloc[:, 1]) <= set(ps.heldout_ids)
            for query, cid in queries.itertuples(index=False, name=None):
                assert label_key(query) in {label_key(a) for a in raw[cid][language][1].split("\n")}
