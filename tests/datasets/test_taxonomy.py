"""The taxonomy pair builder on a small synthetic, ESCO-shaped taxonomy."""

import csv
import os
import re

import numpy as np
import pandas as pd
import pytest

from domain_tune.datasets import taxonomy as tx
from domain_tune.datasets.pairs import PairsWarning
from domain_tune.errors import BadInputError

ESCO_HEADER = ["conceptType", "conceptUri", "iscoGroup", "preferredLabel", "altLabels", "description"]

# (id, group, preferred label, alternative labels, description)
TOY = [
    ("c01", "2511", "data scientist",
     "data expert\nData Scientist\nresearch data scientist\n  data   researcher \ndata expert",
     "Data scientists find and interpret\nrich data sources."),
    ("c02", "2511", "data analyst", "data warehouse analyst\nanalyst", "Data analysts inspect data."),
    ("c03", "2511", "business analyst", "analyst\nbusiness process analyst", "They analyse business."),
    ("c04", "2511", "statistician", "statistical data analyst\ndata analyst", "They do statistics."),
    ("c05", "1111", "chief executive officer", "CEO\nmanaging director", "They run companies."),
    ("c06", "1111", "legislator", "member of parliament\nsenator", "They make laws."),
    ("c07", "1111", "mayor", "city mayor\nlord mayor", "They run cities."),
    ("c08", "5120", "cook", "line cook\nshort-order cook", "They cook."),
    ("c09", "5120", "chef", "head chef\nexecutive chef", "They lead kitchens."),
    ("c10", "5120", "sous-chef", "second chef\nassistant head chef", "They assist chefs."),
    ("c11", "9999", "lighthouse keeper", "lightkeeper", "They keep lighthouses."),
    ("c12", "2511", "data engineer", "big data engineer\ndata pipeline engineer\n", "They build pipelines."),
]
SHARED = {"analyst", "data analyst"}  # alt of c02 and c03; alt of c04 and preferred label of c02


def write_toy_taxonomy(path, rows=TOY):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(ESCO_HEADER)
        for cid, group, label, alts, desc in rows:
            w.writerow(["Occupation", cid, group, label, alts, desc])
    return path


@pytest.fixture
def toy_path(tmp_path):
    return write_toy_taxonomy(tmp_path / "occupations.csv")


@pytest.fixture
def toy(toy_path):
    return tx.read_esco(toy_path)


def all_label_keys(cid):
    """Every label of a concept as in the raw file (preferred and alternative), as keys."""
    row = next(r for r in TOY if r[0] == cid)
    return {tx.label_key(row[2])} | {tx.label_key(a) for a in row[3].split("\n") if a.strip()}


def texts_of(frame):
    return {tx.label_key(t) for t in frame["base"]} | {tx.label_key(t) for t in frame["ref"]}


def test_read_cleans_labels(toy):
    assert len(toy) == 12
    assert toy.synonyms[0] == ["data expert", "research data scientist", "data researcher"]
    assert toy.synonyms[11] == ["big data engineer", "data pipeline engineer"]
    assert toy.stats == {
        "concepts": 12, "alternative_labels_raw": 26, "same_as_preferred": 1,
        "repeated_in_concept": 1, "alternative_labels": 24,
    }
    assert toy.descriptions[0] == "Data scientists find and interpret rich data sources."


def test_scores_are_the_angular_similarities_of_the_cosine_targets():
    assert tx.angular_score(1.0) == 1.0
    assert tx.angular_score(0.7) == pytest.approx(0.7468166888933649, abs=1e-15)
    assert round(tx.angular_score(0.7), 4) == 0.7468
    assert tx.angular_score(0.0) == 0.5


def test_pairs_follow_the_scheme(toy):
    ps = tx.build_pairs(toy, holdout=0.0, seed=3, negatives=2, related=2)
    assert list(ps.train.columns) == ["base", "ref", "similarity"]
    pref = dict(zip(toy.labels, toy.groups))
    alt_owner = {a: toy.labels[i] for i in range(len(toy)) for a in toy.synonyms[i]}
    related = tx.angular_score(0.7)
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
    assert not SHARED & {tx.label_key(a) for a in ps.train["base"][ps.train.similarity == 1.0]}
    assert not (ps.train["base"].str.casefold() == ps.train["ref"].str.casefold()).any()


def test_synonym_pairs(toy):
    plain = tx.build_pairs(toy, holdout=0.0, seed=3)
    ps = tx.build_pairs(toy, holdout=0.0, seed=3, synonyms=2)
    owner = {a: i for i in range(len(toy)) for a in toy.synonyms[i]}
    extra = ps.train.merge(plain.train, how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"]
    assert len(extra) == ps.stats["pairs"]["synonym"] > 0
    per_concept = {}
    for base, ref, sim in extra[["base", "ref", "similarity"]].itertuples(index=False):
        assert sim == 1.0 and owner[base] == owner[ref]  # two labels of one concept
        assert not SHARED & {tx.label_key(base), tx.label_key(ref)}
        per_concept[owner[base]] = per_concept.get(owner[base], 0) + 1
    assert max(per_concept.values()) == 2  # at most --synonym-pairs per concept
    assert per_concept[0] == 2  # data scientist: 3 unshared alternative labels, 3 couples
    # without synonym pairs nothing else changes
    assert ps.stats["pairs"]["positive"] == plain.stats["pairs"]["positive"]
    assert "two alternative labels of one concept" in tx.render_readme(ps)
    with pytest.raises(BadInputError, match="--synonym-pairs"):
        tx.build_pairs(toy, synonyms=-1)


def test_custom_cosines_and_no_negatives(toy):
    ps = tx.build_pairs(toy, holdout=0.0, negatives=0, related=1,
                        cosines={"positive": 0.9, "related": 0.5})
    assert set(ps.train.similarity.round(6)) == {round(tx.angular_score(0.9), 6),
                                                 round(tx.angular_score(0.5), 6)}
    assert ps.stats["pairs"]["unrelated"] == 0
    assert ps.params["scores"]["unrelated"] == 0.5


@pytest.mark.parametrize("holdout", [0.2, 0.25, 0.5])
@pytest.mark.parametrize("seed", range(6))
def test_holdout_leaks_nothing(toy, holdout, seed):
    ps = tx.build_pairs(toy, holdout=holdout, seed=seed, negatives=2, related=3, descriptions=True,
                        synonyms=2)
    assert len(ps.heldout_ids) == round(holdout * 12)
    in_train = texts_of(ps.train)
    for cid in ps.heldout_ids:
        assert not all_label_keys(cid) & in_train, cid
        assert tx.label_key(toy.descriptions[toy.ids.index(cid)]) not in in_train
    # the queries are the unshared alternative labels of the held-out concepts
    gold = dict(zip(ps.queries["query"], ps.queries["conceptUri"]))
    assert set(gold.values()) <= set(ps.heldout_ids)
    assert not SHARED & {tx.label_key(q) for q in gold}
    expected = sum(len([a for a in toy.synonyms[toy.ids.index(c)] if tx.label_key(a) not in SHARED])
                   for c in ps.heldout_ids)
    assert len(gold) == expected
    # the corpus is every concept's preferred label
    assert list(ps.corpus.columns) == ["label", "conceptUri"]
    assert ps.corpus["conceptUri"].tolist() == toy.ids
    assert ps.stats["heldout_concepts"] + ps.stats["training_concepts"] == 12


def test_holdout_everything_is_a_benchmark_of_the_whole_taxonomy(toy):
    ps = tx.build_pairs(toy, holdout=1.0)
    assert len(ps.train) == 0 and list(ps.train.columns) == ["base", "ref", "similarity"]
    assert len(ps.queries) == 24 - 3 and ps.stats["training_concepts"] == 0
    assert tx.build_pairs(toy, holdout=0.0).queries.empty


def test_a_heldout_alternative_label_that_is_a_training_preferred_label_is_dropped(toy):
    # c04's alternative label "data analyst" is c02's preferred label
    seed = next(s for s in range(200)
                if "c04" in tx.choose_heldout(toy.ids, 0.25, s)
                and "c02" not in tx.choose_heldout(toy.ids, 0.25, s))
    ps = tx.build_pairs(toy, holdout=0.25, seed=seed)
    assert "data analyst" not in texts_of(ps.train)
    assert ps.stats["dropped_heldout_overlap"] > 0


def test_deterministic_with_seed(toy, toy_path, tmp_path):
    a = tx.build_pairs(toy, holdout=0.25, seed=7, descriptions=True)
    b = tx.build_pairs(tx.read_esco(toy_path), holdout=0.25, seed=7, descriptions=True)
    pd.testing.assert_frame_equal(a.train, b.train)
    pd.testing.assert_frame_equal(a.queries, b.queries)
    assert a.heldout_ids == b.heldout_ids
    others = [tx.build_pairs(toy, holdout=0.25, seed=s) for s in (8, 9)]
    assert any(o.heldout_ids != a.heldout_ids for o in others)
    # the split depends on the ids, not on the order of the rows
    shuffled = write_toy_taxonomy(tmp_path / "shuffled.csv", TOY[::-1])
    assert tx.build_pairs(tx.read_esco(shuffled), holdout=0.25, seed=7).heldout_ids == a.heldout_ids


def test_descriptions(toy):
    ps = tx.build_pairs(toy, holdout=0.0, negatives=1, descriptions=True)
    k = ps.stats["pairs"]
    assert k["description"] == 12 and k["description_unrelated"] == 12
    own = ps.train[ps.train.ref == "Data scientists find and interpret rich data sources."]
    assert set(zip(own.base, own.similarity)) >= {("data scientist", 1.0)}
    no_desc = tx.read_taxonomy(  # a taxonomy without a description column
        toy.path, "conceptUri", "preferredLabel", "altLabels", "iscoGroup")
    with pytest.raises(BadInputError, match="--descriptions"):
        tx.build_pairs(no_desc, descriptions=True)


def test_max_pairs_and_only_groups(toy):
    full = tx.build_pairs(toy, holdout=0.0)
    few = tx.build_pairs(toy, holdout=0.0, max_pairs=5)
    assert len(few.train) == 5 and few.stats["dropped_max_pairs"] == len(full.train) - 5
    cooks = tx.only_groups(toy, ["51"])
    assert cooks.ids == ["c08", "c09", "c10"] and cooks.stats["alternative_labels"] == 6
    with pytest.raises(BadInputError, match="--only-groups 7"):
        tx.only_groups(toy, ["7"])


def test_without_groups_there_are_no_related_pairs(toy_path):
    flat = tx.read_taxonomy(toy_path, "conceptUri", "preferredLabel", "altLabels")
    ps = tx.build_pairs(flat, holdout=0.0)
    assert ps.stats["pairs"]["related"] == 0 and ps.stats["pairs"]["unrelated"] > 0


def test_generic_columns_and_separator(tmp_path):
    path = tmp_path / "skills.csv"
    path.write_text("id,name,syn,family\n1,python,py|python3,prog\n2,rust,rustlang,prog\n"
                    "3,baking,bread making|pastry,food\n", encoding="utf-8")
    t = tx.read_taxonomy(path, "id", "name", "syn", "family", separator="|")
    assert t.synonyms == [["py", "python3"], ["rustlang"], ["bread making", "pastry"]]
    ps = tx.build_pairs(t, holdout=0.0, negatives=1)
    assert ps.stats["pairs"] == {"positive": 5, "synonym": 0, "related": 1, "unrelated": 5,
                                 "description": 0, "description_unrelated": 0}
    assert list(ps.queries.columns) == ["query", "id"]
    assert tx.unescape_separator("\\n") == "\n"


@pytest.mark.parametrize("holdout", [-0.1, 1.5, float("nan")])
def test_bad_holdout(toy, holdout):
    with pytest.raises(BadInputError, match="--holdout"):
        tx.build_pairs(toy, holdout=holdout)


@pytest.mark.parametrize("kwargs, option", [
    ({"negatives": -1}, "--negatives"), ({"related": -2}, "--related"),
    ({"max_pairs": 0}, "--max-pairs"), ({"seed": -1}, "--seed"), ({"cosines": {"related": 1.5}}, "--related-cosine"),
    ({"cosines": {"positive": 0.1, "unrelated": 0.5}}, "must order positive > unrelated"),
    ({"cosines": {"related": -0.5}}, "related between"),
])
def test_bad_parameters(toy, kwargs, option):
    with pytest.raises(BadInputError, match=option):
        tx.build_pairs(toy, **kwargs)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "is empty"),
    (",".join(ESCO_HEADER) + "\n", "has a header but no rows"),
    ("conceptUri,preferredLabel,iscoGroup\nc1,cook,5120\n", "has no column 'altLabels' (--synonyms-column)"),
    ("conceptUri,preferredLabel,altLabels,iscoGroup\nc1,cook,,5120\nc1,chef,,5120\n", "appears in rows 2 and 3"),
    ("conceptUri,preferredLabel,altLabels,iscoGroup\nc1,,x,5120\n", "row 2 has an empty preferredLabel"),
])
def test_bad_taxonomy_files(tmp_path, content, message):
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError, match=re.escape(message)) as e:
        tx.read_taxonomy(path, "conceptUri", "preferredLabel", "altLabels", "iscoGroup")
    assert str(path) in str(e.value)


def test_write_pairs_is_atomic(toy, tmp_path, monkeypatch):
    ps = tx.build_pairs(toy, holdout=0.25, seed=1)
    out = tmp_path / "pairs"
    tx.write_pairs(ps, out, source="occupations.csv", attribution=tx.ESCO_ATTRIBUTION,
                   command="domain-tune pairs esco occupations.csv --out pairs")
    assert sorted(os.listdir(out)) == ["README.md", "corpus.csv", "heldout_queries.csv", "train.csv"]
    train = pd.read_csv(out / "train.csv", dtype={"base": str, "ref": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(train, ps.train)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "ESCO © European Union" in readme and "--out pairs" in readme
    assert f"| `train.csv` | `base,ref,similarity` | {len(ps.train):,} |" in readme
    with pytest.raises(BadInputError, match="already exists"):
        tx.write_pairs(ps, out)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tx, "render_readme", broken)
    with pytest.raises(RuntimeError):
        tx.write_pairs(ps, out, overwrite=True)
    with pytest.raises(RuntimeError):
        tx.write_pairs(ps, tmp_path / "fresh")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["occupations.csv", "pairs"]  # no temp dirs left
    assert (out / "README.md").read_text(encoding="utf-8") == readme  # the old output is intact
    tx.write_pairs(tx.build_pairs(toy, holdout=0.5), out, overwrite=True)
    assert len(pd.read_csv(out / "corpus.csv")) == 12
    assert sorted(os.listdir(tmp_path)) == ["occupations.csv", "pairs"]


def test_read_retrieval_set(tmp_path):
    (tmp_path / "q.csv").write_text("query,conceptUri\nchef de cuisine,c9\nanalyst,c2\nanalyst,c3\n",
                                    encoding="utf-8")
    (tmp_path / "c.csv").write_text("label,conceptUri\nchef,c9\ndata analyst,c2\nbusiness analyst,c3\n",
                                    encoding="utf-8")
    data = tx.read_retrieval_set(tmp_path / "q.csv", tmp_path / "c.csv")
    assert data.queries == ["chef de cuisine", "analyst", "analyst"]
    assert data.query_ids == ["c9", "c2", "c3"] and data.corpus_ids == ["c9", "c2", "c3"]
    assert tx.read_retrieval_set(tmp_path / "q.csv", tmp_path / "c.csv", limit=1).queries == [
        "chef de cuisine"]
    (tmp_path / "bad.csv").write_text("query,conceptUri\nx,c9\ny,c77\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="row 3, 'c77'"):
        tx.read_retrieval_set(tmp_path / "bad.csv", tmp_path / "c.csv")
    (tmp_path / "empty_cell.csv").write_text('query,conceptUri\n" ",c9\n', encoding="utf-8")
    with pytest.raises(BadInputError, match="row 2 has an empty query"):
        tx.read_retrieval_set(tmp_path / "empty_cell.csv", tmp_path / "c.csv")
    with pytest.raises(BadInputError, match=r"no column 'title' \(--label-column\)"):
        tx.read_retrieval_set(tmp_path / "q.csv", tmp_path / "c.csv", label_column="title")


@pytest.mark.shared_data
def test_real_esco_counts():
    from tests.conftest import shared_path

    esco = tx.read_esco(shared_path("esco", "occupations_en.csv"))
    assert esco.stats["concepts"] == 2942
    assert esco.stats["alternative_labels_raw"] == 29997
    ps = tx.build_pairs(esco, holdout=0.2, seed=0)
    assert ps.stats["heldout_concepts"] == 588 and len(ps.corpus) == 2942
    in_train = texts_of(ps.train)
    heldout = set(ps.heldout_ids)
    for i, cid in enumerate(esco.ids):
        if cid in heldout:
            assert tx.label_key(esco.labels[i]) not in in_train
            assert not {tx.label_key(a) for a in esco.synonyms[i]} & in_train
    assert np.isin(ps.train.similarity.unique(), [1.0, tx.angular_score(0.7), 0.5]).all()


def test_a_taxonomy_that_yields_nothing_to_train_or_query_warns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,label,syn,group\n" + "".join(f"{i},label {i},,{i}\n" for i in range(10)))
    taxonomy = tx.read_taxonomy(path, id_column="id", label_column="label",
                                synonyms_column="syn", group_column="group")
    with pytest.warns(PairsWarning) as caught:
        ps = tx.build_pairs(taxonomy, holdout=0.2)
    messages = " ".join(str(w.message) for w in caught)
    assert "no training pairs" in messages and "heldout_queries.csv is empty" in messages
    assert ps.train.empty and ps.queries.empty
