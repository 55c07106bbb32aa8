"""Writing a pairs folder: ``train.csv``, ``heldout_queries.csv``, ``corpus.csv`` and the
``README.md`` that says where they came from, how they were made and what they count.
With labels in more languages, also ``heldout_queries_LANG.csv`` and ``corpus_LANG.csv``
for each further language.

The folder appears only when complete (see :func:`~domain_tune.outputs.atomic_directory`).
"""

import os

from domain_tune.datasets.pairs import negative_column_name
from domain_tune.datasets.taxonomy import ESCO_COLUMNS
from domain_tune.outputs import atomic_directory


def make_pairs_folder(path, out, columns, separator="\\n", language="en", label_files=(),
                      holdout=0.2, seed=0, negatives=1, synonyms=0, related=3, cosines=None,
                      descriptions=False, corpus_aware=False, only_groups=None, max_pairs=None,
                      hard_negatives=None, attribution=None, overwrite=False, command=None,
                      progress=False):
    """Read a taxonomy (with labels in more languages, ``label_files`` of ``LANG=FILE``), build
    its pairs and write the pairs folder ``out``; ``hard_negatives`` is ``{"model", "depth",
    "per_pair"}`` to mine them.  Returns the counts with ``out`` and ``params``."""
    from domain_tune.datasets import taxonomy as tx
    from domain_tune.datasets.taxonomy_pairs import build_pairs
    from domain_tune.outputs import check_out

    check_out(out, overwrite, "dir", inputs=[path, *(f.partition("=")[2] for f in label_files)])
    if not (descriptions or corpus_aware):
        columns = dict(columns, description_column=None)
    separator = tx.unescape_separator(separator)
    label_files = tx.parse_label_files(label_files, language)
    taxonomy = tx.read_taxonomy(path, **columns, separator=separator, language=language)
    for lang, label_path in label_files:
        taxonomy = tx.read_translation(taxonomy, lang, label_path, columns["id_column"],
                                       columns["label_column"], columns["synonyms_column"],
                                       separator=separator)
    if only_groups is not None:
        taxonomy = tx.only_groups(taxonomy, only_groups.split(","))
    pairset = build_pairs(taxonomy, holdout=holdout, seed=seed, negatives=negatives,
                          related=related, cosines=cosines, descriptions=descriptions,
                          max_pairs=max_pairs, synonyms=synonyms, corpus_aware=corpus_aware)
    if hard_negatives:
        from domain_tune._env import import_tensorflow

        import_tensorflow()  # quietly, before the mining module imports it
        from domain_tune.datasets.mining import add_hard_negatives

        add_hard_negatives(pairset, hard_negatives["model"], hard_negatives["depth"], seed,
                           progress=progress, per_pair=hard_negatives["per_pair"])
    write_pairs(pairset, out, overwrite=overwrite, source=path, attribution=attribution,
                command=command)
    return {"out": out, **pairset.stats, "params": pairset.params}


def write_pairs(pairset, out, overwrite=False, source=None, attribution=None, command=None):
    """Write ``train.csv``, ``heldout_queries.csv``, ``corpus.csv`` and ``README.md`` to ``out``.

    The directory appears only when complete (see :func:`atomic_directory`).
    """

    def write(tmp):
        pairset.train.to_csv(os.path.join(tmp, "train.csv"), index=False, encoding="utf-8")
        pairset.queries.to_csv(os.path.join(tmp, "heldout_queries.csv"), index=False, encoding="utf-8")
        pairset.corpus.to_csv(os.path.join(tmp, "corpus.csv"), index=False, encoding="utf-8")
        for language, queries in pairset.language_queries.items():
            queries.to_csv(os.path.join(tmp, f"heldout_queries_{language}.csv"), index=False,
                           encoding="utf-8")
        for language, corpus in pairset.language_corpora.items():
            corpus.to_csv(os.path.join(tmp, f"corpus_{language}.csv"), index=False, encoding="utf-8")
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(render_readme(pairset, source, attribution, command))

    return atomic_directory(out, overwrite, write)


def render_readme(pairset, source=None, attribution=None, command=None):
    """The ``README.md`` of a pairs directory: where it came from, how, and the counts."""
    s, p = pairset.stats, pairset.params
    id_col = pairset.corpus.columns[1]
    lines = ["# Scored pairs and a retrieval benchmark from a taxonomy", ""]
    if source:
        lines += [f"Source: `{source}`." + (f" {attribution}." if attribution else ""), ""]
    elif attribution:
        lines += [f"{attribution}.", ""]
    if command:
        lines += ["Made with:", "", "```bash", command, "```", ""]
    corpus_aware = p.get("setting") == "corpus-aware"
    lines += setting_paragraph(corpus_aware)
    cos, sc = p["cosines"], p["scores"]
    mined = p.get("hard_negatives")
    lines += [
        "## Files",
        "",
        "| file | columns | rows |",
        "| --- | --- | --- |",
        f"| `train.csv` | `base,ref,similarity{_negative_columns(mined)}` "
        f"| {s['train_pairs']:,} |",
        f"| `heldout_queries.csv` | `query,{id_col}` | {s['queries']:,} |",
        f"| `corpus.csv` | `label,{id_col}` | {s['corpus']:,} |",
        *[f"| `{name}_{language}.csv` | `{column},{id_col}` | {len(frame):,} |"
          for language in pairset.language_queries
          for name, column, frame in (("heldout_queries", "query", pairset.language_queries[language]),
                                      ("corpus", "label", pairset.language_corpora[language]))],
        "",
        "## Scores",
        "",
        "`similarity` is the angular similarity `1 - arccos(cos) / pi` of a cosine target:",
        "",
        "| pair | cosine | similarity | pairs |",
        "| --- | --- | --- | --- |",
        f"| alternative label, its preferred label | {cos['positive']:g} | {sc['positive']:.4f} "
        f"| {s['pairs']['positive']:,} |",
    ]
    if p.get("synonyms"):
        lines += [
            f"| two alternative labels of one concept | {cos['positive']:g} | "
            f"{sc['positive']:.4f} | {s['pairs']['synonym']:,} |",
        ]
    lines += [
        f"| preferred labels of two concepts of one group | {cos['related']:g} | {sc['related']:.4f} "
        f"| {s['pairs']['related']:,} |",
        f"| alternative label, preferred label of a concept of another group | {cos['unrelated']:g} "
        f"| {sc['unrelated']:.4f} | {s['pairs']['unrelated']:,} |",
    ]
    if p["descriptions"]:
        lines += [
            f"| preferred label, its description | {cos['positive']:g} | {sc['positive']:.4f} "
            f"| {s['pairs']['description']:,} |",
            f"| preferred label, description of a concept of another group | {cos['unrelated']:g} "
            f"| {sc['unrelated']:.4f} | {s['pairs']['description_unrelated']:,} |",
        ]
    languages = p.get("languages")
    if languages:
        k, main = s["pairs"], languages[0]
        lines += [
            f"| alternative label in another language, the {main} preferred label "
            f"| {cos['positive']:g} | {sc['positive']:.4f} | {k['cross_positive']:,} |",
            f"| preferred labels of one concept in another language and {main} | {cos['positive']:g} "
            f"| {sc['positive']:.4f} | {k['translation']:,} |",
            f"| alternative label in another language, the {main} preferred label of a concept of "
            f"another group | {cos['unrelated']:g} | {sc['unrelated']:.4f} | {k['cross_unrelated']:,} |",
        ]
        if corpus_aware:
            lines += [
                f"| corpus-aware: a held-out concept's preferred labels in another language and {main} "
                f"| {cos['positive']:g} | {sc['positive']:.4f} | {k['corpus_translation']:,} |",
            ]
    if corpus_aware:
        k = s["pairs"]
        lines += [
            f"| corpus-aware: a held-out concept's preferred label, the preferred label of a concept "
            f"of its group | {cos['related']:g} | {sc['related']:.4f} | {k['corpus_related']:,} |",
            "| corpus-aware: preferred label, its description (every concept"
            + (" held out" if p["descriptions"] else "") + f") | {cos['positive']:g} "
            f"| {sc['positive']:.4f} | {k['corpus_description']:,} |",
            f"| corpus-aware: preferred label, description of a concept of another group "
            f"| {cos['unrelated']:g} | {sc['unrelated']:.4f} | {k['corpus_description_unrelated']:,} |",
        ]
    if languages:
        lines += ["", "The rows above without a language count the pairs of every language "
                  "(see Languages)."]
    lines += [
        "",
        f"Parameters: hold-out {p['holdout']:g}, seed {p['seed']}, {p['negatives']} unrelated "
        f"pair(s) per positive, up to {p['related']} related pair(s) "
        + (f"and {p['synonyms']} synonym pair(s) " if p.get("synonyms") else "")
        + "per concept, description pairs "
        f"{'on' if p['descriptions'] else 'off'}"
        + (f", at most {p['max_pairs']:,} pairs" if p["max_pairs"] else "") + ".",
        "",
    ]
    if mined:
        lines += [
            f"Hard negatives: {s['hard_negatives']:,} positive pairs have a `negative`, a training",
            f"concept's preferred label drawn from the {mined['depth']} that `{mined['model']}` ranks",
            "highest for the pair's `base`, other than its own (read by the in-batch losses).",
        ] if mined.get("per_pair", 1) == 1 else [
            f"Hard negatives: {s['hard_negatives']:,} in the columns `{_negative_columns(mined)[1:]}`,"
            f" up to {mined['per_pair']} distinct training concepts' preferred labels per positive pair,",
            f"drawn from the {mined['depth']} that `{mined['model']}` ranks highest for the pair's",
            "`base`, other than its own (read by the in-batch losses).",
            "",
        ]
    lines += [
        "## Counts",
        "",
        f"- concepts: {s['concepts']:,}; held out: {s['heldout_concepts']:,}; "
        f"training: {s['training_concepts']:,}",
        f"- alternative labels read: {s['alternative_labels_raw']:,}; equal to their own "
        f"preferred label (dropped): {s['same_as_preferred']:,}; repeated within a concept "
        f"(kept once): {s['repeated_in_concept']:,}; kept: {s['alternative_labels']:,}",
        f"- shared alternative labels (a label of two or more concepts: neither a pair nor a query): "
        f"{s['shared_alternative_labels']:,}",
        f"- training pairs dropped because a text is "
        f"{'an alternative' if corpus_aware else 'a'} label of a held-out concept: "
        f"{s['dropped_heldout_overlap']:,}; duplicates dropped: {s['dropped_duplicates']:,}"
        + (f"; dropped by --max-pairs: {s['dropped_max_pairs']:,}" if p["max_pairs"] else ""),
        "",
        *(["No alternative label of a held-out concept (compared case-insensitively"
            + (", in any language" if languages else "") + ") appears in",
            "any column of `train.csv`; their preferred labels and descriptions do."] if corpus_aware
          else ["No label of a held-out concept (compared case-insensitively"
                + (", in any language" if languages else "") + ") appears in `train.csv`."]),
        "The queries are the held-out concepts' unshared alternative labels; the corpus is every",
        "concept's preferred label, so a query is ranked against all concepts.",
        "",
    ]
    if languages:
        lines += languages_section(pairset)
    id_option = f" --id-column {id_col}" if id_col != ESCO_COLUMNS["id_column"] else ""
    lines += [
        "## Evaluate",
        "",
        "```bash",
        "domain-tune eval-retrieval --model MODEL --queries heldout_queries.csv --corpus corpus.csv"
        + id_option,
    ]
    for language in pairset.language_queries:
        lines += [
            f"domain-tune eval-retrieval --model MODEL --queries heldout_queries_{language}.csv "
            f"--corpus corpus.csv{id_option}  # cross-lingual",
            f"domain-tune eval-retrieval --model MODEL --queries heldout_queries_{language}.csv "
            f"--corpus corpus_{language}.csv{id_option}  # {language} only",
        ]
    lines += ["```", ""]
    return "\n".join(lines)


def languages_section(pairset):
    """The README's account of a multilingual pairs folder: counts per language and pair of languages."""
    s, p = pairset.stats, pairset.params
    main, files = p["languages"][0], p.get("label_files", {})
    lines = [
        "## Languages",
        "",
        f"Labels in {len(p['languages'])} languages, joined by concept id; the hold-out applies to "
        "all of them at once.",
        "",
        "| language | labels from | concepts with a label | alternative labels kept | shared "
        "| held-out queries | corpus | training pairs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for language in p["languages"]:
        t = s["languages"][language]
        lines.append(
            f"| {language} | `{files[language]}` | {t['concepts']:,} "
            f"| {t['alternative_labels']:,} | {t['shared_alternative_labels']:,} | {t['queries']:,} "
            f"| {t['corpus']:,} | {sum(t['pairs'].values()):,} |"
        )
    lines += [
        "",
        "| languages | alternative label, preferred label | translations | unrelated"
        + (" | corpus-aware translations" if "corpus_translation" in s["pairs"] else "") + " |",
        "| --- | --- | --- | ---" + (" | ---" if "corpus_translation" in s["pairs"] else "") + " |",
    ]
    for pair, k in s["cross_lingual"].items():
        lines.append(
            f"| {pair} | {k['cross_positive']:,} | {k['translation']:,} | {k['cross_unrelated']:,}"
            + (f" | {k['corpus_translation']:,}" if "corpus_translation" in k else "") + " |"
        )
    lines += [
        "",
        "Within each language, the recipe above (alternative label with preferred label, group",
        "mates, unrelated concepts; descriptions in the main language only) runs over the training",
        "concepts that have a label in it. Across languages, each alternative label in a language",
        f"is paired with its concept's {main} preferred label (and with the {main} preferred label of",
        "concepts of other groups, unrelated), and a concept's two preferred labels with each other",
        "(translations). A label shared by two concepts within one language is neither a pair nor a",
        "query.",
        "",
        "`heldout_queries_LANG.csv` holds the held-out concepts' unshared alternative labels in LANG.",
        f"`corpus.csv` is every concept's {main} preferred label; `corpus_LANG.csv` the LANG preferred",
        "labels of the concepts that have one. LANG queries against `corpus.csv` measure cross-lingual",
        f"retrieval (a LANG title finds its concept by the {main} label), against `corpus_LANG.csv`",
        "retrieval within LANG.",
        "",
    ]
    return lines


def setting_paragraph(corpus_aware):
    """Which of the two settings the pairs are in, and what that means for numbers measured on them."""
    if corpus_aware:
        return [
            "Setting: **corpus-aware** (`--corpus-aware`). In deployment the corpus is known and only",
            "the queries are not, so the corpus side of every concept, held-out ones included, is",
            "trained on: its preferred label with its description and with concepts of its group. No",
            "alternative label of a held-out concept (the queries) is in any column of `train.csv`.",
            "Retrieval numbers measured here are corpus-aware ones; do not compare them with strict ones.",
            "",
        ]
    return [
        "Setting: **strict**. No text of a held-out concept (label or description) is in",
        "`train.csv`: the held-out concepts are unseen, corpus side and queries alike.",
        "",
    ]


def _negative_columns(mined):
    """``",negative"``, ``",negative,negative_2"``, ... for the hard negatives mined (or "")."""
    if not mined:
        return ""
    return "".join(f",{negative_column_name(k)}" for k in range(mined.get("per_pair", 1)))
