"""A small synthetic, ESCO-shaped taxonomy shared by the taxonomy and pair-building tests."""

import csv

from domain_tune.datasets.taxonomy import label_key

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


def all_label_keys(cid):
    """Every label of a concept as in the raw file (preferred and alternative), as keys."""
    row = next(r for r in TOY if r[0] == cid)
    return {label_key(row[2])} | {label_key(a) for a in row[3].split("\n") if a.strip()}


def texts_of(frame):
    return {label_key(t) for t in frame["base"]} | {label_key(t) for t in frame["ref"]}


# A multilingual taxonomy: the English file (ESCO's columns) and one file per language with the
# same id, label and synonyms columns. c4 has no German row; in French, "cuisinier" is c1's
# preferred label and an alternative label of c2 (shared), and "chef" is c2's label in English
# and French; the German "Data Scientist" is c3's English preferred label.
MULTI = {
    "en": [("c1", "5120", "cook", "line cook\nshort-order cook", "They cook."),
           ("c2", "5120", "chef", "head chef\nexecutive chef", "They lead kitchens."),
           ("c3", "2511", "data scientist", "data expert", "They model data."),
           ("c4", "2221", "nurse", "registered nurse", "They care for patients.")],
    "de": [("c1", "Koch", "Beikoch"),
           ("c2", "Küchenchef", "Chefkoch\nKüchenmeister"),
           ("c3", "Datenwissenschaftler", "Data Scientist\nDatenexperte")],
    "fr": [("c1", "cuisinier", "commis de cuisine"),
           ("c2", "chef", "chef de cuisine\ncuisinier"),
           ("c4", "infirmier", "infirmière")],
}


def write_multilingual(folder, languages=("de", "fr")):
    """occupations_en.csv and occupations_LANG.csv in ``folder``; returns {language: path}."""
    paths = {"en": write_toy_taxonomy(folder / "occupations_en.csv", MULTI["en"])}
    for language in languages:
        paths[language] = folder / f"occupations_{language}.csv"
        with open(paths[language], "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["conceptType", "conceptUri", "preferredLabel", "altLabels", "description"])
            for cid, label, alts in MULTI[language]:
                w.writerow(["Occupation", cid, label, alts, f"({language}) {label}"])
    return paths


def multilingual_label_keys(cid, alternative_only=False):
    """Every label of a concept in every language of MULTI, as keys (alternative labels only,
    less any equal to the preferred label of its own language, if asked)."""
    keys = set()
    for language, rows in MULTI.items():
        for row in rows:
            if row[0] != cid:
                continue
            label, alts = (row[2], row[3]) if language == "en" else (row[1], row[2])
            own = label_key(label)
            alt_keys = {label_key(a) for a in alts.split("\n") if a.strip()} - {own}
            keys |= alt_keys if alternative_only else alt_keys | {own}
    return keys
