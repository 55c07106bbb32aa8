"""Commands that build data: pairs esco / taxonomy, mine-negatives, parallel-sentences."""

import inspect

import click

from domain_tune import api
from domain_tune.cli.main import (
    _column_pair, _command_line, _count, json_option, main, model_option,
    needs_tensorflow, overwrite_option, _print_json, _warn_unused,
)


# --- taxonomy pairs and retrieval ---


@main.group("pairs")
def pairs_group():
    """Build scored training pairs and a held-out retrieval set from a taxonomy.

    \b
    Example:
      domain-tune pairs esco ../shared/data/esco/occupations_en.csv --out esco_pairs
    """


# Defaults of the pair recipe; keep in sync with domain_tune.datasets.taxonomy and taxonomy_pairs
# (not imported here so that --help does not load pandas).
_ESCO_COLUMNS = {
    "id_column": "conceptUri", "label_column": "preferredLabel", "synonyms_column": "altLabels",
    "group_column": "iscoGroup", "description_column": "description",
}


# the pair recipe's defaults, where they are written: the keywords of api.make_pairs
_PAIRS = {name: p.default for name, p in inspect.signature(api.make_pairs).parameters.items()}


def _pairs_options(f):
    """Options shared by `pairs esco` and `pairs taxonomy` (the recipe and the output); their
    defaults are those of :func:`domain_tune.api.make_pairs`."""
    options = [
        click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create."),
        click.option("--holdout", type=float, default=_PAIRS["holdout"], show_default=True,
                     help="Fraction of concepts held out (by id) for evaluation, 0 to 1."),
        click.option("--seed", type=int, default=_PAIRS["seed"], show_default=True,
                     help="Seed of the hold-out split and of the sampled pairs."),
        click.option("--negatives", type=int, default=_PAIRS["negatives"], show_default=True,
                     help="Unrelated pairs per positive pair."),
        click.option("--synonym-pairs", "synonyms", type=int, default=_PAIRS["synonym_pairs"],
                     show_default=True,
                     help="Positive pairs of two alternative labels of one concept, per concept."),
        click.option("--related", type=int, default=_PAIRS["related"], show_default=True,
                     help="Related pairs (same group) drawn per concept."),
        click.option("--positive-cosine", type=float, default=_PAIRS["positive_cosine"],
                     show_default=True,
                     help="Cosine target of a preferred label and its alternative label."),
        click.option("--related-cosine", type=float, default=_PAIRS["related_cosine"],
                     show_default=True,
                     help="Cosine target of two concepts of one group."),
        click.option("--unrelated-cosine", type=float, default=_PAIRS["unrelated_cosine"],
                     show_default=True,
                     help="Cosine target of concepts of different groups."),
        click.option("--descriptions", is_flag=True,
                     help="Also pair each preferred label with its own description (positive) "
                     "and with others' (unrelated)."),
        click.option("--corpus-aware", is_flag=True,
                     help="The corpus-aware setting: also train on the corpus side of every "
                     "concept, held-out ones included (preferred label with its description and "
                     "its group); no held-out alternative label (query) enters training."),
        click.option("--only-groups", metavar="PREFIXES",
                     help="Keep only concepts whose group starts with one of these "
                     "comma-separated prefixes (e.g. 25,35)."),
        click.option("--max-pairs", type=int, help="Keep a random subset of this many training pairs."),
        click.option("--hard-negatives", is_flag=True,
                     help="Mine a hard negative for each positive pair with --mining-model (a "
                     "'negative' column, read by the in-batch losses)."),
        click.option("--mining-model", default=_PAIRS["mining_model"],
                     show_default=True, metavar="MODEL",
                     help="Model that ranks the candidates for --hard-negatives."),
        click.option("--mining-depth", type=int, default=_PAIRS["mining_depth"], show_default=True,
                     help="Draw each hard negative from this many best-ranked candidates."),
        click.option("--hard-negatives-per-pair", "per_pair", type=click.IntRange(min=1),
                     default=_PAIRS["hard_negatives_per_pair"], show_default=True,
                     help="Hard negatives mined per positive pair (columns negative, "
                     "negative_2, ...)."),
        overwrite_option,
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _column_options(defaults):
    """--id-column etc.: ESCO's names as defaults for `pairs esco`, required for `pairs taxonomy`."""

    def option(name, key, help, required):
        if defaults:  # (click 8.3+ counts an explicit default=None as a value given)
            return click.option(name, key, default=defaults[key], show_default=True,
                                metavar="COLUMN", help=help)
        return click.option(name, key, required=required, metavar="COLUMN", help=help)

    options = [
        option("--id-column", "id_column", "Column of the concept id (the hold-out unit).", True),
        option("--label-column", "label_column", "Column of the preferred label.", True),
        option("--synonyms-column", "synonyms_column", "Column of the alternative labels.", True),
        option("--group-column", "group_column",
               "Column of the group; concepts of a group are related.", False),
        option("--description-column", "description_column",
               "Column of the description (read with --descriptions or --corpus-aware).", False),
        click.option("--separator", default="\\n", show_default=True,
                     help="Separator of the alternative labels in one cell (\\n, \\t or text)."),
        click.option("--language", default="en", show_default=True, metavar="LANG",
                     help="Language of the labels of the main file (names the other languages' "
                     "cross-lingual pairs)."),
        click.option("--labels", "label_files", multiple=True, metavar="LANG=FILE",
                     help="Labels in one more language, joined by the id column: a file with the "
                     "same id, label and synonyms columns (e.g. de=occupations_de.csv). Repeat "
                     "for more languages; adds monolingual and cross-lingual pairs and "
                     "heldout_queries_LANG.csv, corpus_LANG.csv."),
    ]

    def decorate(f):
        for o in reversed(options):
            f = o(f)
        return f

    return decorate


def _make_pairs(path, out, overwrite, as_json, attribution, columns, separator, holdout, seed,
                negatives, synonyms, related, positive_cosine, related_cosine, unrelated_cosine,
                descriptions, only_groups, max_pairs, hard_negatives, mining_model, mining_depth,
                corpus_aware, language, label_files, per_pair=1):
    if not hard_negatives:
        _warn_unused(["mining_model", "mining_depth", "per_pair"],
                     "needs --hard-negatives; ignored")
    s = api.make_pairs(
        path, out, columns=columns, separator=separator, language=language, labels=label_files,
        holdout=holdout, seed=seed, negatives=negatives, synonym_pairs=synonyms, related=related,
        positive_cosine=positive_cosine, related_cosine=related_cosine,
        unrelated_cosine=unrelated_cosine, descriptions=descriptions, corpus_aware=corpus_aware,
        only_groups=only_groups, max_pairs=max_pairs, hard_negatives=hard_negatives,
        mining_model=mining_model, mining_depth=mining_depth, hard_negatives_per_pair=per_pair,
        attribution=attribution, overwrite=overwrite, command=_command_line(),
        progress=not as_json)
    if as_json:
        _print_json(s)
    else:
        k = s["pairs"]
        click.echo(
            f"Wrote {_count(s['train_pairs'], 'training pair')} ({k['positive']:,} positive, "
            + (f"{k['synonym']:,} synonym, " if synonyms else "")
            + f"{k['related']:,} related, {k['unrelated']:,} unrelated"
            + (f", {k['description'] + k['description_unrelated']:,} with descriptions"
               if descriptions else "")
            + (f", {k['corpus_related'] + k['corpus_description'] + k['corpus_description_unrelated']:,}"
               " corpus-side" if corpus_aware else "")
            + (f", {sum(k[c] for c in ('cross_positive', 'translation', 'cross_unrelated')):,} "
               "cross-lingual" if label_files else "")
            + (f", {s['hard_negatives']:,} hard negatives" if hard_negatives else "")
            + f"), {_count(s['queries'], 'held-out query', 'held-out queries')} "
            f"({s['heldout_concepts']:,} of "
            f"{_count(s['concepts'], 'concept')}) and a corpus of {_count(s['corpus'], 'label')} "
            f"to {out}."
        )
        for lang, t in s.get("languages", {}).items():
            if lang != language:
                cross = s["cross_lingual"][f"{lang}-{language}"]
                click.echo(
                    f"  {lang}: {t['concepts']:,} concepts with a label, "
                    f"{sum(t['pairs'].values()):,} pairs within {lang}, "
                    f"{sum(cross.values()):,} {lang}-{language} pairs, {t['queries']:,} held-out "
                    f"queries (heldout_queries_{lang}.csv), a corpus of {t['corpus']:,} labels "
                    f"(corpus_{lang}.csv)"
                )



@pairs_group.command("esco")
@click.argument("path", metavar="OCCUPATIONS_CSV", type=click.Path())
@_column_options(_ESCO_COLUMNS)
@_pairs_options
def pairs_esco_cmd(path, out, overwrite, as_json, separator, **kwargs):
    """Scored pairs from ESCO occupations (occupations_en.csv).

    `pairs taxonomy` with ESCO's columns: conceptUri, preferredLabel,
    altLabels (newline-separated), iscoGroup (ISCO-08 unit group),
    description.  Scores are the angular similarities of the cosine targets:
    1.0 for an alternative label and its preferred label, 0.7468 for two
    occupations of one unit group, 0.5 for unrelated occupations.  Writes
    train.csv, heldout_queries.csv, corpus.csv and README.md to --out.

    With --labels de=occupations_de.csv (and more), labels in other
    languages join by conceptUri: pairs within each language, cross-lingual
    pairs, and heldout_queries_LANG.csv / corpus_LANG.csv per language.
    --corpus-aware also trains on the corpus side of the held-out
    occupations (never on their alternative labels).

    \b
    Example:
      domain-tune pairs esco ../shared/data/esco/occupations_en.csv --out esco_pairs
      domain-tune eval-retrieval --queries esco_pairs/heldout_queries.csv \\
          --corpus esco_pairs/corpus.csv
    """
    columns = {k: kwargs.pop(k) for k in _ESCO_COLUMNS}
    _make_pairs(path, out, overwrite, as_json, "ESCO © European Union", columns, separator, **kwargs)


@pairs_group.command("taxonomy")
@click.argument("path", metavar="FILE", type=click.Path())
@_column_options(None)
@click.option("--attribution", help="Attribution line for the README.md (e.g. the data's licence).")
@_pairs_options
def pairs_taxonomy_cmd(path, out, overwrite, as_json, separator, attribution, **kwargs):
    """Scored pairs from any taxonomy CSV: id, preferred label, synonyms, group.

    One row per concept; the synonyms of a concept share one cell, split on
    --separator.  Concepts of one --group-column value are related (without
    it there are no related pairs).  Same recipe, options and outputs as
    `pairs esco`, including --labels LANG=FILE for other languages (files
    with the same id, label and synonyms columns) and --corpus-aware.

    \b
    Example:
      domain-tune pairs taxonomy skills.csv --id-column id --label-column name \\
          --synonyms-column synonyms --group-column family --out skill_pairs
    """
    columns = {k: kwargs.pop(k) for k in _ESCO_COLUMNS}
    _make_pairs(path, out, overwrite, as_json, attribution, columns, separator, **kwargs)



@main.command("mine-negatives")
@click.argument("pairs", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="Pairs CSV to write.")
@model_option
@click.option("--depth", type=int, default=10, show_default=True,
              help="Draw each negative from this many best-ranked candidates.")
@click.option("--per-pair", type=click.IntRange(min=1), default=1, show_default=True,
              help="Negatives per positive pair (columns negative, negative_2, ...), distinct, "
              "drawn from the --depth best.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--text-columns", default="base,ref", show_default=True, callback=_column_pair,
              help="The two text columns.")
@click.option("--score-column", default="similarity", show_default=True)
@click.option("--score-range", type=(float, float), default=(0.0, 1.0), show_default=True,
              metavar="LO HI",
              help="Range of the scores (rescaled to [0, 1]); positives score >= 0.99 of it.")
@overwrite_option
@json_option
@needs_tensorflow
def mine_negatives_cmd(pairs, out, model, depth, per_pair, seed, text_columns, score_column,
                       score_range, overwrite, as_json):
    """Add a hard negative to each positive pair of a pairs file.

    For each positive pair (score >= 0.99), --model ranks the refs of all
    positive pairs for its base and one of the --depth best that is not a
    positive of that base becomes its 'negative' (--per-pair N: N distinct
    ones, in negative, negative_2, ...).  The in-batch losses of `train` rank
    the ref above all of them.  Other columns are kept.

    \b
    Example:
      domain-tune mine-negatives pairs.csv --out pairs_hn.csv
      domain-tune train pairs_hn.csv --loss in-batch-symmetric
    """
    info = api.mine_negatives(model, pairs, out, depth=depth, per_pair=per_pair, seed=seed,
                              text_columns=text_columns, score_column=score_column,
                              score_range=score_range, overwrite=overwrite,
                              progress=not as_json)
    if as_json:
        _print_json({"out": out, "model": model, **info})
    else:
        click.echo(f"Wrote {_count(info['pairs'], 'pair')} with "
                   f"{_count(info['hard_negatives'], 'hard negative')} "
                   f"(of {_count(info['positive'], 'positive pair')}) to {out}.")



@main.command("parallel-sentences")
@click.argument("data_dir", type=click.Path(), required=False)
@click.option("--out", "-o", required=True, type=click.Path(), help="Parallel CSV to write.")
@click.option("--languages", metavar="LANG,...",
              help="Target languages [default: every language in DATA_DIR].")
@click.option("--source", default="en", show_default=True, help="The source language.")
@click.option("--split", type=click.Choice(["train", "dev", "test"]), default="train",
              show_default=True, help="Which stsb-LANG-SPLIT.csv files to read.")
@overwrite_option
@json_option
def parallel_sentences_cmd(data_dir, out, languages, source, split, overwrite, as_json):
    """Build a parallel CSV (source, translation, language) from stsb-multi-mt files.

    DATA_DIR holds the machine-translated STS benchmark, stsb-LANG-SPLIT.csv,
    row i of each language the translation of row i of the source language's
    file (default: $DOMAIN_TUNE_MULTILINGUAL_DIR, else the published files,
    downloaded once).  Each source sentence is paired with its translation in
    every other language.  The file is the input of `train --parallel`.

    \b
    Example:
      domain-tune parallel-sentences ../shared/data/stsb-multi-mt --out parallel.csv
      domain-tune train pairs.csv --parallel parallel.csv
    """
    info = api.parallel_sentences(data_dir, out, languages=languages, source=source, split=split,
                                  overwrite=overwrite)
    if as_json:
        _print_json(info)
    else:
        click.echo(f"Wrote {_count(info['rows'], 'parallel sentence')} "
                   f"({_count(info['sources'], 'distinct source')}, "
                   f"{source} -> {', '.join(info['languages'])}) to {out}.")
