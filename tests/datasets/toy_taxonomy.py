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
