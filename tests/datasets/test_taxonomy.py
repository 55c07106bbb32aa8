"""Reading a taxonomy, on a small synthetic, ESCO-shaped one."""

import re

import pytest

from domain_tune.datasets.taxonomy import read_taxonomy, unescape_separator
from domain_tune.datasets.taxonomy_pairs import build_pairs
from domain_tune.errors import BadInputError
from tests.datasets.toy_taxonomy import ESCO_HEADER


def test_read_cleans_labels(toy):
    assert len(toy) == 12
    assert toy.synonyms[0] == ["data expert", "research data scientist", "data researcher"]
    assert toy.synonyms[11] == ["big data engineer", "data pipeline engineer"]
    assert toy.stats == {
        "concepts": 12, "alternative_labels_raw": 26, "same_as_preferred": 1,
        "repeated_in_concept": 1, "alternative_labels": 24,
    }
    assert toy.descriptions[0] == "Data scientists find and interpret rich data sources."


def test_generic_columns_and_separator(tmp_path):
    path = tmp_path / "skills.csv"
    path.write_text("id,name,syn,family\n1,python,py|python3,prog\n2,rust,rustlang,prog\n"
                    "3,baking,bread making|pastry,food\n", encoding="utf-8")
    t = read_taxonomy(path, "id", "name", "syn", "family", separator="|")
    assert t.synonyms == [["py", "python3"], ["rustlang"], ["bread making", "pastry"]]
    ps = build_pairs(t, holdout=0.0, negatives=1)
    assert ps.stats["pairs"] == {"positive": 5, "synonym": 0, "related": 1, "unrelated": 5,
                                 "description": 0, "description_unrelated": 0}
    assert list(ps.queries.columns) == ["query", "id"]
    assert unescape_separator("\\n") == "\n"


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
        read_taxonomy(path, "conceptUri", "preferredLabel", "altLabels", "iscoGroup")
    assert str(path) in str(e.value)
