"""Commands that run a model where users deploy it: serve (HTTP) and beam embed (bulk)."""

import inspect

import click

from domain_tune import api
from domain_tune.cli.main import (
    _count, _print_json, batch_size_option, json_option, main, model_option, needs_tensorflow,
)

_SERVE = {name: p.default for name, p in inspect.signature(api.serve).parameters.items()}
_BEAM = {name: p.default for name, p in inspect.signature(api.beam_embed).parameters.items()}


@main.command("serve")
@model_option
@click.option("--corpus", "-c", type=click.Path(),
              help="Texts for POST /match: a text file or a CSV (embedded at start).")
@click.option("--column", metavar="COLUMN", help="Text column of --corpus when it is a CSV.")
@click.option("--id-column", metavar="COLUMN", help="Id column of the --corpus CSV.")
@click.option("--index", "index_dir", type=click.Path(), metavar="INDEX_DIR",
              help="An index built by `domain-tune index` for POST /match (in place of --corpus).")
@click.option("--host", default=_SERVE["host"], show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=_SERVE["port"], show_default=True,
              help="Port to listen on.")
@click.option("--max-batch", type=click.IntRange(min=1), default=_SERVE["max_batch"],
              show_default=True, help="Texts of concurrent requests embedded in one model call.")
@click.option("--max-texts", type=click.IntRange(min=1), default=_SERVE["max_texts"],
              show_default=True, help="Texts (or queries) one request may hold (else 413).")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=_SERVE["max_body_bytes"],
              show_default=True, help="Largest request body (else 413).")
@batch_size_option()
@needs_tensorflow
def serve_cmd(model, corpus, column, id_column, index_dir, host, port, max_batch, max_texts,
              max_body_bytes, batch_size):
    """Serve the model over HTTP (JSON) until SIGTERM or Ctrl-C.

    \b
    GET  /health
    POST /embed  {"texts": ["...", ...]}            -> {"embeddings": [[...], ...]}
    POST /match  {"queries": ["...", ...], "top_k": 5}
                 -> {"matches": [[{"id", "text", "cosine", "angular"}, ...], ...]}

    Errors come back as {"error": "..."} with 400 (bad input), 413 (too
    large), 404 (unknown route).  Needs the serve extra:
    pip install -e ".[serve]".

    \b
    Example:
      domain-tune serve --model runs/my-domain --index occupations.index --port 8080
    """
    api.serve(model, corpus=corpus, column=column, id_column=id_column, index=index_dir,
              host=host, port=port, max_batch=max_batch, max_texts=max_texts,
              max_body_bytes=max_body_bytes, batch_size=batch_size, progress=True)


@main.group("beam")
def beam_group():
    """Bulk jobs on Apache Beam (the beam extra: pip install -e ".[beam]")."""


@beam_group.command("embed", context_settings={"ignore_unknown_options": True,
                                                "allow_extra_args": True})
@click.argument("input_glob", metavar="INPUT_GLOB")
@click.option("--out", "-o", required=True, metavar="PREFIX",
              help="Output prefix: PREFIX-00000-of-00004.npz (or .tfrecord) shards.")
@model_option
@click.option("--column", "-c", metavar="COLUMN",
              help="Text column: the inputs are CSV files [default: text files, one per line].")
@click.option("--id-column", metavar="COLUMN",
              help="Id column of the CSV inputs [default: FILE:ROW; FILE:LINE for text files].")
@click.option("--format", "output_format", type=click.Choice(["npz", "tfrecord"]),
              default=_BEAM["output_format"], show_default=True, help="Shard format.")
@click.option("--shards", type=click.IntRange(min=1), default=_BEAM["shards"], show_default=True,
              help="Output shards.")
@click.option("--min-batch-size", type=click.IntRange(min=1), help="RunInference's smallest batch.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=_BEAM["max_batch_size"],
              show_default=True, help="RunInference's largest batch.")
@click.option("--large-model", is_flag=True,
              help="One copy of the model per worker machine, shared by its processes.")
@json_option
@click.pass_context
def beam_embed_cmd(ctx, input_glob, out, model, column, id_column, output_format, shards,
                   min_batch_size, max_batch_size, large_model, as_json):
    """Embed every text of the files matching INPUT_GLOB on a Beam runner.

    Options after the command's own go to Beam unchanged: the DirectRunner
    runs by default; --runner DataflowRunner --project P --region R
    --temp_location gs://... (or FlinkRunner, SparkRunner options) run the
    same job on a cluster.

    \b
    Examples:
      domain-tune beam embed 'logs/*.txt' --out embeddings/logs --model runs/my-domain
      domain-tune beam embed 'gs://b/titles-*.csv' --column title --out gs://b/emb/titles \\
          --shards 64 --runner DataflowRunner --project P --region europe-west1 \\
          --temp_location gs://b/tmp
    """
    info = api.beam_embed(input_glob, out, model=model, column=column, id_column=id_column,
                          output_format=output_format, shards=shards,
                          min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                          large_model=large_model, pipeline_args=list(ctx.args))
    if as_json:
        _print_json(info)
    else:
        click.echo(f"Wrote {_count(info['texts'], 'embedding')} from "
                   f"{_count(info['files'], 'file')} to {_count(len(info['outputs']), 'shard')} "
                   f"{out}-*-of-{info['shards']:05d}.{info['format']}.")
