"""Reading a taxonomy, on a small synthetic, ESCO-shaped one."""

import re

import pytest

from domain_tune.datasets.taxonomy import (
    only_groups, parse_label_files, read_esco, read_taxonomy, read_translation, unescape_separator,
)
from domain_tune.datasets.taxonomy_pairs import build_pairs
from domain_tune.errors import BadInputError
from tests.datasets.toy_taxonomy import ESCO_HEADER, write_multilingual


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


# --- labels in more languages ------------------------------------------------------


def read_multilingual(paths, languages=("de", "fr")):
    taxonomy = read_esco(paths["en"])
    for language in languages:
        taxonomy = read_translation(taxonomy, language, paths[language], "conceptUri",
                                    "preferredLabel", "altLabels")
    return taxonomy


def test_read_translations_joined_by_id(tmp_path):
    taxonomy = read_multilingual(write_multilingual(tmp_path))
    assert taxonomy.languages == ["en", "de", "fr"]
    de, fr = taxonomy.translations["de"], taxonomy.translations["fr"]
    assert de.labels == ["Koch", "Küchenchef", "Datenwissenschaftler", ""]  # no German row for c4
    assert de.synonyms == [["Beikoch"], ["Chefkoch", "Küchenmeister"], ["Data Scientist", "Datenexperte"], []]
    assert fr.labels == ["cuisinier", "chef", "", "infirmier"]  # the file's order does not matter
    assert de.stats == {"concepts": 3, "alternative_labels_raw": 5, "same_as_preferred": 0,
                        "repeated_in_concept": 0, "alternative_labels": 5}
    assert taxonomy.labels == ["cook", "chef", "data scientist", "nurse"]  # the main file is unchanged
    # a subset keeps every language aligned
    cooks = only_groups(taxonomy, ["51"])
    assert cooks.translations["fr"].labels == ["cuisinier", "chef"] and cooks.languages == ["en", "de", "fr"]


def test_translation_labels_are_cleaned_like_the_main_file(tmp_path):
    paths = write_multilingual(tmp_path, ())
    (tmp_path / "de.csv").write_text(
        'conceptUri,preferredLabel,altLabels\nc1, Koch ,"koch\nBeikoch\n beikoch\n\nJung  koch"\n',
        encoding="utf-8")
    de = read_translation(read_esco(paths["en"]), "de", tmp_path / "de.csv", "conceptUri",
                          "preferredLabel", "altLabels").translations["de"]
    assert de.labels[0] == "Koch" and de.synonyms[0] == ["Beikoch", "Jung koch"]
    assert de.stats["same_as_preferred"] == 1 and de.stats["repeated_in_concept"] == 1


@pytest.mark.parametrize("content, message", [
    (None, "de labels {path} does not exist"),
    ("", "de labels {path} is empty"),
    ("conceptUri,preferredLabel,altLabels\n", "de labels {path} has a header but no rows"),
    ("conceptUri,preferredLabel\nc1,Koch\n", "has no column 'altLabels' (--synonyms-column)"),
    ("uri,preferredLabel,altLabels\nc1,Koch,\n", "has no column 'conceptUri' (--id-column)"),
    ("conceptUri,preferredLabel,altLabels\nc1,Koch,\nc9,Maler,\nc8,x,\n",
     "de labels {path}: row 3 has a conceptUri that is not in taxonomy {main} ('c9'; 2 rows in all)"),
    ("conceptUri,preferredLabel,altLabels\nc1,Koch,\nc1,Koch,\n", "conceptUri 'c1' appears in rows 2 and 3"),
    ("conceptUri,preferredLabel,altLabels\nc1, ,Beikoch\n", "row 2 has an empty preferredLabel"),
    ("conceptUri,preferredLabel,altLabels\n ,Koch,\n", "row 2 has an empty conceptUri"),
])
def test_bad_translation_files(tmp_path, content, message):
    main = write_multilingual(tmp_path, ())["en"]
    path = tmp_path / "de.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError) as e:
        read_translation(read_esco(main), "de", path, "conceptUri", "preferredLabel", "altLabels")
    assert message.format(path=path, main=main) in str(e.value)
    assert "\n" not in str(e.value)


def test_parse_label_files():
    assert parse_label_files(["de=occupations_de.csv", "pt-BR=a=b.csv"]) == [
        ("de", "occupations_de.csv"), ("pt-BR", "a=b.csv")]
    assert parse_label_files([], "fr") == []


@pytest.mark.parametrize("specs, language, message", [
    (["occupations_de.csv"], "en", "--labels occupations_de.csv: give LANGUAGE=FILE"),
    (["de="], "en", "give LANGUAGE=FILE"),
    (["d e=x.csv"], "en", "'d e' is not a language code"),
    (["de=x.csv", "DE=y.csv"], "en", "--labels DE=y.csv: the language 'DE' is given twice"),
    (["en=x.csv"], "en", "the language 'en' is the main file's (--language)"),
    ([], "english!", "--language: 'english!' is not a language code"),
])
def test_bad_label_file_options(specs, language, message):
    with pytest.raises(BadInputError, match=re.escape(message)):
        parse_label_files(specs, language)
