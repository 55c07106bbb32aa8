"""Commands that measure a model: eval-sts, eval-translation, eval-retrieval."""

import time

import click

from domain_tune.cli.main import (
    batch_size_option, _column_pair, _count, json_option, _load, main, model_option,
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
    from domain_tune.api import evaluate_sts

    modes = [name for name, on in (("--language", language), ("--panel", panel),
                                   ("--file", stsb_file)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"{' and '.join(modes)} exclude each other; give one")
    if languages is not None and not panel:
        raise click.UsageError("--languages chooses the languages of --panel; add --panel")
    if stsb_file:
        _warn_unused(["split", "sts_dir", "multilingual_dir"], "has no effect with --file; ignored")
    elif modes:
        _warn_unused(["sts_dir"], "is the English benchmark's; --language and --panel read "
                     "--multilingual-dir; ignored")
    else:
        _warn_unused(["multilingual_dir"], "is read by --language or --panel only; ignored")
    if modes:
        return _eval_multilingual(model, split, similarity, limit, language, panel, languages,
                                  stsb_file, multilingual_dir, batch_size, as_json)
    start = time.perf_counter()
    result = evaluate_sts(model, split=split, sts_dir=sts_dir, limit=limit, similarity=similarity,
                          batch_size=batch_size, progress=not as_json)
    seconds = time.perf_counter() - start
    result = {**result, "model": model}
    if as_json:
        _print_json(result)
    else:
        click.echo(
            f"STS benchmark {split} ({result['n']} pairs, {similarity}): "
            f"Pearson {result['pearson']:.4f}  Spearman {result['spearman']:.4f}  "
            f"[{model}, {seconds:.1f} s]"
        )


def _eval_multilingual(model, split, similarity, limit, language, panel, languages, stsb_file,
                       multilingual_dir, batch_size, as_json):
    from domain_tune.evaluation import multilingual as ml

    if panel:
        if similarity != "cosine":
            raise click.UsageError("--panel correlates cosine similarity; drop --similarity")
        from domain_tune.datasets.stsb_multi import load_multilingual

        data = load_multilingual(multilingual_dir, split, languages, limit)
        encoder = _load(model)
        result = ml.evaluate_panel(encoder, data, batch_size=batch_size, progress=not as_json)
        result["model"] = model
        if as_json:
            _print_json(result)
            return
        click.echo(f"Multilingual STS {split} ({result['n']:,} pairs per language, cosine; "
                   f"{_count(result['sentences'], 'distinct sentence')}) [{model}, "
                   f"{result['seconds']:.1f} s]")
        for line in ml.panel_lines(result):
            click.echo(line)
        return
    from domain_tune.evaluation.sts import evaluate_sts

    if stsb_file:
        from domain_tune.datasets.stsb_multi import read_stsb_file

        data = read_stsb_file(stsb_file)
        data = data.head(limit) if limit else data
        encoder = _load(model)
        start = time.perf_counter()
        result = evaluate_sts(encoder, data.sentences1, data.sentences2, data.scores, similarity,
                              batch_size=batch_size, progress=not as_json)
        result = {"file": stsb_file, **result}
        what = stsb_file
    else:
        from domain_tune.datasets.stsb_multi import load_language

        data = load_language(language, multilingual_dir, split, limit)
        encoder = _load(model)
        start = time.perf_counter()
        result = evaluate_sts(encoder, data.sentences1, data.sentences2, data.scores, similarity,
                              batch_size=batch_size, progress=not as_json)
        result = {"language": language, "split": split, **result}
        what = f"STS {split} {language}"
    seconds = time.perf_counter() - start
    result["model"] = model
    if as_json:
        _print_json(result)
    else:
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
    from domain_tune.evaluation import multilingual as ml

    if columns is not None and parallel_file is None:
        raise click.UsageError("--parallel-columns names the columns of --parallel; add --parallel FILE")
    if parallel_file is not None and languages is not None:
        raise click.UsageError("--parallel and --languages exclude each other; give one")
    if parallel_file is not None:
        _warn_unused(["split", "multilingual_dir"], "has no effect with --parallel; ignored")
        from domain_tune.datasets.parallel import read_parallel

        par = read_parallel(parallel_file, columns)
        par = par.take(range(min(limit, len(par)))) if limit else par
        encoder = _load(model)
        result = ml.evaluate_translation(encoder, par.source, par.translation, par.columns,
                                         batch_size=batch_size, progress=not as_json)
        pairs = {"-".join(par.columns): result}
    else:
        from domain_tune.datasets.stsb_multi import load_multilingual

        data = load_multilingual(multilingual_dir, split, languages, limit)
        encoder = _load(model)
        pairs = ml.evaluate_translation_split(encoder, data, batch_size=batch_size,
                                              progress=not as_json)
    accs = [v for r in pairs.values() for k, v in r.items() if k != "n"]
    out = {"pairs": pairs, "mean": float(sum(accs) / len(accs)), "model": model}
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
@click.option("--id-column", default="conceptUri", show_default=True,
              help="Id column, in both files.")
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
    from domain_tune.api import evaluate_retrieval

    start = time.perf_counter()
    result = evaluate_retrieval(model, queries_path, corpus_path, query_column=query_column,
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
