"""Commands that put a model to use: embed, match, index, export, interpolate, plot-similarity."""

import inspect
import time

import click

from domain_tune import api
from domain_tune.quantization import PRECISIONS
from domain_tune.cli.main import (
    batch_size_option, _count, DEFAULT_MODEL, json_option, main, model_option,
    needs_tensorflow, overwrite_option, _print_json, _read_texts_file, _warn_unused,
)

_INDEX = {name: p.default for name, p in inspect.signature(api.index).parameters.items()}


@main.command("embed")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="Output .npy, .csv or .jsonl.")
@click.option("--column", "-c", help="Column to embed when INPUT is a CSV.")
@model_option
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="Rows of a .npy as float16, int8 (calibrated per dimension) or binary codes.")
@batch_size_option()
@overwrite_option
@json_option
@needs_tensorflow
def embed_cmd(input_path, out, column, model, precision, batch_size, overwrite, as_json):
    """Embed every text of INPUT (one per line, or a CSV column).

    The format of --out follows its extension: .npy (float32 matrix, one row
    per text, with OUT.npy.json beside it naming the model, for `match
    --corpus-embeddings`), .csv (text and e0..e511) or .jsonl ({"text",
    "embedding"}).
    Large inputs are streamed in chunks; memory does not grow with the file.

    \b
    Example:
      domain-tune embed titles.csv --column title --out titles.npy
    """
    start = time.perf_counter()
    info = api.embed_file(model, input_path, out, column=column, precision=precision,
                          batch_size=batch_size, overwrite=overwrite, progress=True)
    info.update({"model": model, "seconds": round(time.perf_counter() - start, 3)})
    if as_json:
        _print_json(info)
    else:
        click.echo(f"Wrote {_count(info['texts'], 'embedding')} of dimension {info['dim']} to {out}.")



@main.command("match")
@click.argument("queries", type=click.Path())
@click.option("--corpus", "-c", "corpus", type=click.Path(),
              help="Texts to match against: a text file (one per line) or a CSV.")
@click.option("--index", "index_dir", type=click.Path(), metavar="INDEX_DIR",
              help="Match against an index built by `domain-tune index` (in place of --corpus).")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output .csv or .jsonl.")
@model_option
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Matches per query.")
@click.option("--min-score", type=float, help="Leave out matches under this cosine similarity.")
@click.option("--query-column", metavar="COLUMN",
              help="Column of QUERIES when it is a CSV [default: its only column].")
@click.option("--corpus-column", metavar="COLUMN",
              help="Column of --corpus when it is a CSV [default: its only column].")
@click.option("--id-column", metavar="COLUMN",
              help="Id column of the --corpus CSV [default: the row number; line number for a "
              "text file].")
@click.option("--corpus-embeddings", type=click.Path(), metavar="FILE.npy",
              help="Reuse the corpus embeddings in FILE.npy (written by `embed` or an earlier "
              "`match`), refused if another model or other texts made them; written if absent.")
@click.option("--lexical-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Rank by cosine + W x the character 2-4-gram TF-IDF cosine (hybrid; adds a "
              "'score' column).")
@click.option("--description-column", metavar="COLUMN",
              help="A second text of each corpus entry (e.g. its description): each entry is "
              "ranked by normalize(label + --description-weight x description).")
@click.option("--description-weight", type=click.FloatRange(min=0), default=0.5,
              show_default=True, help="Weight of the description (with --description-column).")
@batch_size_option()
@overwrite_option
@json_option
@needs_tensorflow
def match_cmd(queries, corpus, index_dir, out, model, top_k, min_score, query_column, corpus_column,
              id_column, corpus_embeddings, lexical_weight, description_column,
              description_weight, batch_size, overwrite, as_json):
    """For each query, the --top-k most similar corpus entries, with scores.

    One row per match: query, rank (1 = best), corpus_id, corpus_text, cosine
    and angular similarity; CSV or JSONL by the extension of --out.  The
    search against --corpus is exact and runs in memory-bounded blocks (the
    corpus embeddings plus 64 MB), so millions of queries stream through;
    --index searches an index built by `domain-tune index` (exact, quantised
    or approximate).

    \b
    Examples:
      domain-tune match titles.txt --corpus occupations.csv \\
          --corpus-column preferredLabel --id-column conceptUri --out matches.csv
      domain-tune match titles.txt --index occupations.index --out matches.csv
    """
    if not description_column:
        _warn_unused(["description_weight"], "needs --description-column; ignored")
    info = api.match_file(model, queries, corpus, out, top_k=top_k, min_score=min_score,
                          query_column=query_column, corpus_column=corpus_column,
                          id_column=id_column, corpus_embeddings=corpus_embeddings,
                          lexical_weight=lexical_weight, description_column=description_column,
                          description_weight=description_weight, index=index_dir,
                          batch_size=batch_size, overwrite=overwrite, progress=not as_json)
    info["model"] = model
    if as_json:
        _print_json(info)
    else:
        reused = " (corpus embeddings reused)" if (info.get("corpus_embeddings") or {}).get("reused") else ""
        queries_n = f"{info['queries']:,} quer{'y' if info['queries'] == 1 else 'ies'}"
        corpus_n = f"{info['corpus']:,} corpus entr{'y' if info['corpus'] == 1 else 'ies'}"
        click.echo(f"Wrote {_count(info['rows'], 'match', 'matches')} for {queries_n} against {corpus_n} "
                   f"to {out}{reused}.")



@main.command("export")
@model_option
@click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create.")
@overwrite_option
@json_option
@needs_tensorflow
def export_cmd(model, out, overwrite, as_json):
    """Write a TF Hub-style SavedModel (strings in, embeddings out).

    Load it with only TensorFlow and tensorflow_text:

    \b
      import tensorflow_hub as hub, tensorflow_text
      embed = hub.load("DIR"); embed(["a text", "un testo"])
    """
    api.export(model, out, overwrite=overwrite)
    if as_json:
        _print_json({"out": out, "model": model, "signature": "serving_default",
                     "inputs": "inputs", "outputs": "outputs"})
    else:
        click.echo(f"Exported {model} to {out} (SavedModel, signature serving_default: "
                   "inputs -> outputs).")


@main.command("interpolate")
@click.option("--model", "-m", required=True, metavar="MODEL",
              help="The tuned model: a run directory or .keras file.")
@click.option("--base", default=DEFAULT_MODEL, show_default=True, metavar="MODEL",
              help="The pretrained model the tuning started from (for a run tuned from "
              "another run, still the first one's base).")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.8, show_default=True,
              help="Weight of the tuned model (1: tuned, 0: base).")
@click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create.")
@overwrite_option
@click.option("--sts-dir", type=click.Path(), envvar="DOMAIN_TUNE_STS_DIR", show_envvar=True,
              help="Also report STS-B dev for base, tuned and interpolated.")
@json_option
@needs_tensorflow
def interpolate_cmd(model, base, alpha, out, overwrite, sts_dir, as_json):
    """Mix a tuned model's weights with its base's (WiSE-FT).

    Every weight becomes alpha * tuned + (1 - alpha) * base: most of the
    domain gain stays and general quality (STS-B) comes back, at no cost at
    inference.  OUT holds model.keras, saved_model/ and a README.md; it is a
    --model for every command.

    \b
    Example:
      domain-tune interpolate -m runs/esco --alpha 0.8 --out runs/esco-wise
      domain-tune eval-retrieval -m runs/esco-wise --queries Q.csv --corpus C.csv
    """
    result = api.interpolate(model, out, base=base, alpha=alpha, overwrite=overwrite, sts_dir=sts_dir)
    if as_json:
        _print_json(result)
        return
    rows = f" and {result['kept_rows']} added token rows kept" if result["kept_rows"] else ""
    click.echo(f"Wrote {alpha:g} x {model} + {1 - alpha:g} x {base} to {out} "
               f"({result['weights']} weights mixed{rows}).")
    scores = result["sts_dev_pearson"]
    if scores is not None:
        click.echo("STS-B dev Pearson: " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))



@main.command("plot-similarity")
@model_option
@click.option("--compare", metavar="MODEL", help="A second model, drawn beside the first.")
@click.option("--texts", "texts_file", type=click.Path(),
              help="One text per line [default: the article's nine job titles].")
@click.option("--metric", type=click.Choice(["angular", "cosine"]), default="angular",
              show_default=True)
@click.option("--out", "-o", default="similarity.png", show_default=True, type=click.Path(),
              help="PNG file to write.")
@overwrite_option
@json_option
@needs_tensorflow
def plot_similarity_cmd(model, compare, texts_file, metric, out, overwrite, as_json):
    """Heatmap of pairwise similarity of texts under one or two models.

    With --compare, a third panel shows the second model minus the first
    (red: drawn together, blue: pushed apart) on a colour scale of its own.

    \b
    Example:
      domain-tune plot-similarity --compare runs/esco --out base_vs_tuned.png
    """
    texts = _read_texts_file(texts_file) if texts_file else None
    figure = api.plot_similarity(model, compare, texts, out=out, metric=metric,
                                 overwrite=overwrite)
    drawn = figure.similarity
    if as_json:
        _print_json({"out": out, "metric": metric, "texts": drawn["texts"],
                     "similarity": [{"model": name, "matrix": m.round(6).tolist()}
                                    for name, m in zip(drawn["models"], drawn["matrices"])]})
    else:
        click.echo(f"Wrote {out}")


@main.command("index")
@click.argument("corpus", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), metavar="INDEX_DIR",
              help="The index directory to write (or, with --add, to extend).")
@click.option("--column", "-c", metavar="COLUMN",
              help="Text column of CORPUS when it is a CSV [default: its only column].")
@click.option("--id-column", metavar="COLUMN",
              help="Id column of the CORPUS CSV [default: the row number; line number for a text "
              "file; with --add, numbers after the index's last].")
@model_option
@click.option("--kind", default=_INDEX["kind"], show_default=True,
              help="flat (exact), ivf, ivf-pq, ivf-sq8, hnsw (approximate, faiss: the [index] "
              "extra), or a faiss index_factory string such as 'IVF1024,PQ64'.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=_INDEX["precision"],
              show_default=True, help="Codes of a flat index (scanned, then rescored in float32).")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True),
              default=_INDEX["target_recall"], show_default=True,
              help="Recall@10 against exact search that the search parameter (nprobe, efSearch, "
              "rescoring depth) must reach.")
@click.option("--recall-queries", type=click.Path(), metavar="FILE",
              help="Queries (text file or CSV) to measure recall on [default: a sample of the "
              "corpus itself].")
@click.option("--recall-column", metavar="COLUMN", help="Column of --recall-queries (a CSV).")
@click.option("--corpus-embeddings", type=click.Path(), metavar="FILE.npy",
              help="Reuse the corpus embeddings written by `embed` (checked), or write them.")
@click.option("--add", is_flag=True, help="Append CORPUS to the existing index --out.")
@click.option("--seed", type=int, default=_INDEX["seed"], show_default=True,
              help="Seed of the training sample and the recall sample.")
@batch_size_option()
@overwrite_option
@json_option
@needs_tensorflow
def index_cmd(corpus, out, column, id_column, model, kind, precision, target_recall,
              recall_queries, recall_column, corpus_embeddings, add, seed, batch_size, overwrite,
              as_json):
    """Embed CORPUS into a persistent index for `match --index` and `serve --index`.

    The index directory holds the embeddings (or compact codes), the ids and
    texts, and the model's fingerprint: an index is searched only with the
    model that built it.  Approximate kinds choose their search parameter to
    reach --target-recall, and record the recall measured.

    \b
    Examples:
      domain-tune index occupations.csv --column preferredLabel --id-column conceptUri \\
          --out occupations.index
      domain-tune index catalogue.txt --kind ivf-pq --out catalogue.index
      domain-tune index more.txt --out catalogue.index --add
    """
    info = api.index(corpus, out, model=model, column=column, id_column=id_column, kind=kind,
                     precision=precision, target_recall=target_recall,
                     recall_queries=recall_queries, recall_column=recall_column,
                     corpus_embeddings=corpus_embeddings, add=add, batch_size=batch_size,
                     overwrite=overwrite, progress=not as_json, seed=seed)
    if as_json:
        _print_json(info)
        return
    recall = info.get("recall") or {}
    search = info.get("search") or {}
    tuned = (f", {search['parameter']} {search['value']}" if search.get("parameter") else "")
    measured = next((v for k, v in recall.items() if k.startswith("recall_at_")), None)
    shown = f", recall@{recall.get('k')} {measured:.3f}" if measured is not None else ""
    verb = f"Added {_count(info['added'], 'entry', 'entries')} to" if add else "Wrote"
    click.echo(f"{verb} {info['out']}: {_count(info['count'], 'entry', 'entries')}, kind "
               f"{info['kind']}, {info['precision']}{tuned}{shown}, "
               f"{info['bytes_per_entry']:,} bytes an entry.")
    if recall and not recall.get("reached", True):
        click.echo(f"Warning: recall {measured:.3f} is under --target-recall {recall['target']}; "
                   "try another --kind", err=True)

