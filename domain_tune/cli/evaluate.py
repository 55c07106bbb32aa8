"""Commands that measure a model: eval-sts, eval-translation, eval-retrieval."""

import time

import click

from domain_tune import api
from domain_tune.cli.main import (
    batch_size_option, _column_pair, _count, json_option, main, model_option,
    multilingual_dir_option, needs_tensorflow, _print_json, _warn_unused,
)


@main.command("eval-sts")
@model_option
@click.option("--split", type=click.Choice(["dev", "test", "train"]), default="dev", show_default=True)
@click.option(
    "--sts-dir", type=click.Path(), envvar="DOMAIN_TUNE_STS_DIR", show_envvar=True,
    help="Folder with sts-train.csv, sts-dev.csv, sts-test.csv (default: a cached download).",
)
@click.option(
    "--similarity", type=click.Choice(["cosine", "angular"]), default="cosine", show_default=True,
    help="Similarity of two embeddings correlated with the gold scores.",
)
@click.option("--limit", type=click.IntRange(min=2), help="Only the first N pairs of the split.")
@click.option("--language", "-l", metavar="LANG|EN-LANG",
              help="STS in one language of --multilingual-dir (de), or cross-lingual (en-de: "
              "sentence 1 from stsb-en, sentence 2 from stsb-de).")
@click.option("--panel", is_flag=True,
              help="Every language of --multilingual-dir: mono and cross-lingual STS and "
              "translation retrieval, with their means.")
@click.option("--languages", metavar="LIST", help="Languages of --panel, e.g. de,fr,ja [default: all].")
@click.option("--file", "stsb_file", type=click.Path(),
              help="Your own STS file in the stsb-multi-mt format (sentence1,sentence2,score 0-5; "
              "no header).")
@multilingual_dir_option
@batch_size_option()
@json_option
@needs_tensorflow
def eval_sts_cmd(model, split, sts_dir, similarity, limit, language, panel, languages, stsb_file,
                 multilingual_dir, batch_size, as_json):
    """STS benchmark Pearson and Spearman correlation of a model, in any language.

    Without options: the English STS benchmark (--sts-dir); every pair of the
    split is scored (1,500 for dev); a malformed line is an error, never
    skipped.  --language, --panel and --file read the stsb-multi-mt format
    (stsb-LANG-SPLIT.csv, row-aligned translations of the benchmark) from
    --multilingual-dir.

    \b
    Examples:
      domain-tune eval-sts --sts-dir ../shared/data/stsbenchmark --json
      domain-tune eval-sts --language en-de --multilingual-dir ../shared/data/stsb-multi-mt
      domain-tune eval-sts --panel --languages de,ja --multilingual-dir ../shared/data/stsb-multi-mt
      domain-tune eval-sts --file my-sts.csv
    """
    if stsb_file:
        _warn_unused(["split", "sts_dir", "multilingual_dir"], "has no effect with --file; ignored")
    elif language or panel:
        _warn_unused(["sts_dir"], "is the English benchmark's; --language and --panel read "
                     "--multilingual-dir; ignored")
    else:
        _warn_unused(["multilingual_dir"], "is read by --language or --panel only; ignored")
    start = time.perf_counter()
    result = api.evaluate_sts(model, split=split, sts_dir=sts_dir, limit=limit,
                              similarity=similarity, language=language, panel=panel,
                              languages=languages, file=stsb_file,
                              multilingual_dir=multilingual_dir, batch_size=batch_size,
                              progress=not as_json)
    seconds = time.perf_counter() - start
    result = {**result, "model": model}
    if as_json:
        _print_json(result)
    elif panel:
        from domain_tune.evaluation.multilingual import panel_lines

        click.echo(f"Multilingual STS {split} ({result['n']:,} pairs per language, cosine; "
                   f"{_count(result['sentences'], 'distinct sentence')}) [{model}, "
                   f"{result['seconds']:.1f} s]")
        for line in panel_lines(result):
            click.echo(line)
    else:
        what = (stsb_file if stsb_file else f"STS {split} {language}" if language
                else f"STS benchmark {split}")
        click.echo(f"{what} ({result['n']} pairs, {similarity}): Pearson {result['pearson']:.4f}  "
                   f"Spearman {result['spearman']:.4f}  [{model}, {seconds:.1f} s]")


@main.command("eval-translation")
@model_option
@click.option("--languages", metavar="LIST",
              help="Pairs en-LANG of --multilingual-dir, e.g. de,fr,ja [default: all].")
@click.option("--split", type=click.Choice(["dev", "test", "train"]), default="dev", show_default=True)
@click.option("--parallel", "parallel_file", type=click.Path(),
              help="Your own parallel sentences instead: a CSV with a header, source and "
              "translation in the first two columns (or --parallel-columns).")
@click.option("--parallel-columns", "columns", metavar="SRC,TGT", callback=lambda ctx, param, v:
              None if v is None else _column_pair(ctx, param, v), help="The two columns of --parallel.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@multilingual_dir_option
@batch_size_option()
@json_option
@needs_tensorflow
def eval_translation_cmd(model, languages, split, parallel_file, columns, limit, multilingual_dir,
                         batch_size, as_json):
    """Translation retrieval: does each sentence find its own translation?

    For parallel sentences (by default both columns of the rows of
    stsb-en-SPLIT.csv and stsb-LANG-SPLIT.csv), the accuracy of retrieving
    each sentence's translation, by cosine similarity, among all
    translations, in both directions.  Each distinct (sentence, translation)
    pair counts once; retrieving a row whose text equals the gold
    translation's is a hit.

    \b
    Examples:
      domain-tune eval-translation --languages de,ja --multilingual-dir ../shared/data/stsb-multi-mt
      domain-tune eval-translation --parallel en-it.csv --parallel-columns en,it --json
    """
    if parallel_file is not None:
        _warn_unused(["split", "multilingual_dir"], "has no effect with --parallel; ignored")
    out = api.evaluate_translation(model, languages=languages, split=split,
                                   parallel=parallel_file, parallel_columns=columns, limit=limit,
                                   multilingual_dir=multilingual_dir, batch_size=batch_size,
                                   progress=not as_json)
    out["model"] = model
    pairs = out["pairs"]
    if as_json:
        _print_json(out)
        return
    for name, r in pairs.items():
        ways = "  ".join(f"{k} {v:.4f}" for k, v in r.items() if k != "n")
        click.echo(f"{name} ({_count(r['n'], 'parallel pair')}): {ways}")
    click.echo(f"mean accuracy {out['mean']:.4f}  [{model}]")



@main.command("eval-retrieval")
@model_option
@click.option("--queries", "-q", "queries_path", required=True, type=click.Path(),
              help="CSV of queries and their correct ids (e.g. heldout_queries.csv).")
@click.option("--corpus", "-c", "corpus_path", required=True, type=click.Path(),
              help="CSV of labels and their ids to rank (e.g. corpus.csv).")
@click.option("--query-column", default="query", show_default=True, help="Query text column.")
@click.option("--label-column", default="label", show_default=True, help="Corpus text column.")
@click.option("--id-column", metavar="COLUMN",
              help="Id column, in both files [default: conceptUri, else the column beside the "
              "query and the label, as a pairs folder's files have it].")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N distinct queries.")
@click.option("--lexical-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Add this times the character 2-4-gram TF-IDF cosine to the dense score.")
@click.option("--description-column", metavar="COLUMN",
              help="A second text of each corpus entry (e.g. its description), embedded too.")
@click.option("--description-weight", type=click.FloatRange(min=0), default=0.0,
              show_default=True,
              help="An entry's vector is normalize(label + W x description).")
@click.option("--tune-on", "tune_path", type=click.Path(), metavar="QUERIES.csv",
              help="Choose --lexical-weight and --description-weight on these validation queries "
              "(same columns as --queries; never the evaluated ones).")
@batch_size_option()
@json_option
@needs_tensorflow
def eval_retrieval_cmd(model, queries_path, corpus_path, query_column, label_column, id_column,
                       limit, lexical_weight, description_column, description_weight, tune_path,
                       batch_size, as_json):
    """Top-1/5/10 accuracy and MRR of ranking a corpus for each query.

    The corpus is embedded once; each query ranks every corpus id by cosine
    similarity.  A query listed with several ids counts as correct at the
    best-ranked one; an id with several labels scores as its best label.
    Hybrid scoring adds --lexical-weight x the character n-gram TF-IDF cosine
    of query and label, and represents each entry by normalize(label +
    --description-weight x description); --tune-on chooses both weights on
    validation queries.

    \b
    Example:
      domain-tune eval-retrieval --queries esco_pairs/heldout_queries.csv \\
          --corpus esco_pairs/corpus.csv --json
    """
    start = time.perf_counter()
    result = api.evaluate_retrieval(model, queries_path, corpus_path, query_column=query_column,
                                label_column=label_column, id_column=id_column, limit=limit,
                                lexical_weight=lexical_weight,
                                description_column=description_column,
                                description_weight=description_weight, tune_on=tune_path,
                                batch_size=batch_size, progress=not as_json)
    seconds = time.perf_counter() - start
    result.update({"model": model, "seconds": round(seconds, 3)})
    if as_json:
        _print_json(result)
    else:
        click.echo(
            f"Retrieval ({result['n']:,} queries, corpus of {result['corpus']:,}): "
            f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
            f"top-10 {result['top10']:.4f}  MRR {result['mrr']:.4f}  [{model}, {seconds:.1f} s]"
        )
        if "weights" in result:
            w = result["weights"]
            chosen = (f" (chosen on {result['validation']['n']:,} validation queries)"
                      if "validation" in result else "")
            click.echo(f"Hybrid: lexical weight {w['lexical']:g}, description weight "
                       f"{w['description']:g}{chosen}")
