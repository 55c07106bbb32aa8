"""The train command."""

import os
import time

import click

from domain_tune.cli.main import (
    _column_pair, _count, json_option, main, model_option, multilingual_dir_option,
    needs_tensorflow, overwrite_option, _print_json, _read_texts_file, _warn_unused,
)
from domain_tune.errors import BadInputError


_ALIGN_FLAGS = {"columns": "--parallel-columns", "weight": "--align-weight",
                "teacher": "--align-teacher", "batch_size": "--parallel-batch-size",
                "loss": "--align-loss"}


def _align_options(parallel, columns, weight, teacher, batch_size, loss=None):
    from domain_tune.training.distillation import align_options

    given = {"columns": columns, "weight": weight, "teacher": teacher, "batch_size": batch_size,
             "loss": loss}
    return align_options(parallel, given, _ALIGN_FLAGS, "--parallel FILE")


def _default_out():
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))



@main.command("train")
@click.argument("pairs", type=click.Path())
@model_option
@click.option("--out", "-o", type=click.Path(), help="Run directory [default: runs/<timestamp>].")
@overwrite_option
@click.option("--resume", is_flag=True, help="Continue the interrupted run at --out.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS",
              help="Write the resumable state (weights, optimizer moments: about 0.8 GB with the "
              "USE-m3 table) at the end of the first epoch that ends this long after the last "
              "write; 0: after every epoch. --resume continues from the last state written; a "
              "finished run needs none.")
@click.option("--text-columns", default="base,ref", show_default=True, callback=_column_pair,
              help="The two text columns of PAIRS.")
@click.option("--score-column", default="similarity", show_default=True)
@click.option("--score-range", nargs=2, type=float, default=(0.0, 1.0), show_default=True,
              metavar="LO HI", help="Range of the scores, rescaled to [0, 1] (e.g. 0 5 for STS).")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--batch-size", "-b", type=int, default=8, show_default=True)
@click.option("--learning-rate", "--lr", type=float, default=1e-5, show_default=True)
@click.option("--beta-1", type=float, default=0.9, show_default=True)
@click.option("--beta-2", type=float, default=0.9999, show_default=True)
@click.option("--epsilon", type=float, default=1e-7, show_default=True)
@click.option("--clipnorm", type=float, default=1.0, show_default=True,
              help="Clip each gradient to this norm (0: no clipping).")
@click.option("--optimizer", type=click.Choice(["adam", "lazy-adam"]), default="adam",
              show_default=True,
              help="lazy-adam updates only the embedding rows of the batch (10x cheaper step).")
@click.option("--lr-schedule", type=click.Choice(["constant", "linear", "cosine"]),
              default="constant", show_default=True,
              help="After warm-up: keep the learning rate, or decay it (linear, cosine) to 0 "
              "at the last step.")
@click.option("--warmup", type=float, default=0.0, show_default=True,
              help="Fraction of all steps over which the learning rate rises from 0.")
@click.option("--mini-batch-size", type=click.IntRange(min=1), metavar="N",
              help="Cache gradients (GradCache): embed each batch N texts at a time, so a large "
              "--batch-size of in-batch negatives needs the memory of N texts only.")
@click.option("--bucket/--no-bucket", default=True, show_default=True,
              help="Group pairs of similar length into batches (less padding, 3-4x faster).")
@click.option("--validation-split", type=float, default=0.2, show_default=True)
@click.option("--validation-file", type=click.Path(), help="Validation pairs (instead of a split).")
@click.option("--patience", type=int, default=3, show_default=True, help="Early-stopping patience.")
@click.option("--min-delta", type=float, default=0.001, show_default=True)
@click.option("--monitor", type=click.Choice(["val_loss", "loss"]), default="val_loss",
              show_default=True, help="Early stopping watches this (loss reproduces the article).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--sts-dir", type=click.Path(), envvar="DOMAIN_TUNE_STS_DIR", show_envvar=True,
              help="STS benchmark folder for the before/after check.")
@click.option("--no-sts", is_flag=True, help="Skip the STS benchmark before/after.")
@click.option("--sts-limit", type=click.IntRange(min=2),
              help="Only the first N STS dev pairs (of the multilingual panel too).")
@click.option("--multilingual", metavar="LIST|all|none",
              help="Languages of the multilingual STS panel before/after (mono, cross-lingual "
              "en-LANG, translation retrieval) [default: de,ja,pl, if stsb-multi-mt data is found; "
              "else skipped with a notice].")
@multilingual_dir_option
@click.option("--texts", "texts_file", type=click.Path(),
              help="Texts of similarity.png, one per line [default: nine job titles].")
@click.option("--data-attribution", metavar="TEXT",
              help="Licence and attribution of PAIRS for the model card [default: the line with "
              "a (c) or licence in a README.md beside PAIRS].")
@click.option("--loss", type=click.Choice(["mse", "cosent", "in-batch", "in-batch-symmetric"]),
              default="mse",
              show_default=True,
              help="mse on angular similarity (the article's), CoSENT ranking, or in-batch "
              "negatives for positive pairs (best for retrieval; -symmetric ranks both ways).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Scale (inverse temperature) of the cosent and in-batch losses: cosines are "
              "multiplied by S before the softmax; lower is softer [default: 20].")
@click.option("--embeddings", type=click.Choice(["trainable", "frozen", "semi-frozen", "random"]),
              default="trainable", show_default=True,
              help="Which embedding rows train (semi-frozen: only new domain rows).")
@click.option("--add-vocab", metavar="FILE|auto",
              help="Add domain terms as whole pieces: a file (one per line) or 'auto' "
              "(frequent words of PAIRS split into 3+ pieces).")
@click.option("--max-new-pieces", type=int, default=256, show_default=True)
@click.option("--new-rows", type=click.Choice(["pieces", "mean"]), default="pieces",
              show_default=True,
              help="Start a new row from the mean of its old pieces, or of all rows.")
@click.option("--freeze-encoder", is_flag=True, help="Train only the embeddings.")
@click.option("--distribute", type=click.Choice(["none", "mirrored", "multi-worker"]),
              default="none", show_default=True,
              help="tf.distribute strategy: local GPUs (mirrored) or a TF_CONFIG cluster.")
@click.option("--cpu-replicas", type=click.IntRange(min=1),
              help="Split the CPU into N logical devices (with --distribute mirrored).")
@click.option("--mixed-precision", type=click.Choice(["bfloat16", "float16"]),
              help="Compute in 16 bits, keep float32 variables and loss (for GPUs).")
@click.option("--parallel", "parallel", type=click.Path(), metavar="FILE",
              help="Keep languages aligned while tuning: a CSV of parallel sentences (source, "
              "translation) for multilingual distillation (see `parallel-sentences`).")
@click.option("--parallel-columns", callback=lambda c, p, v: v and _column_pair(c, p, v),
              metavar="SRC,TGT", help="Source and translation columns of --parallel "
              "[default: its first two].")
@click.option("--align-weight", type=float, metavar="W",
              help="Weight of the distillation term added to the pair loss [default: 1.0].")
@click.option("--align-teacher", type=click.Choice(["base", "self"]),
              help="Target of a source and its translation: the frozen base model's embedding "
              "of the source, or the tuned model's own (gradient stopped; it can collapse the "
              "space at a high --align-weight, see the README) [default: base].")
@click.option("--parallel-batch-size", type=int, metavar="N",
              help="Parallel sentences per training step [default: 16].")
@click.option("--align-loss", type=click.Choice(["embedding", "similarity", "contrastive"]),
              help="The alignment objective: 'embedding' pulls both texts onto the teacher's "
              "embedding of the source (Reimers & Gurevych); 'similarity' matches the teacher's "
              "similarities between the batch's sentences, within and across languages; "
              "'contrastive' ranks each text's own translation first among the batch's (no "
              "teacher). Measured best on ESCO: contrastive with --align-weight 5 "
              "--parallel-batch-size 32 (see the README) [default: embedding].")
@click.option("--quiet", "-q", is_flag=True, help="No per-epoch progress.")
@json_option
@needs_tensorflow
def train_cmd(pairs, model, out, overwrite, resume, checkpoint_every, text_columns, score_column, score_range,
              epochs, batch_size, learning_rate, beta_1, beta_2, epsilon, clipnorm, optimizer,
              lr_schedule, warmup, mini_batch_size, bucket, validation_split, validation_file, patience, min_delta, monitor, seed,
              sts_dir, no_sts, sts_limit, texts_file, loss, scale, embeddings, add_vocab, max_new_pieces,
              new_rows, freeze_encoder, distribute, cpu_replicas, mixed_precision, parallel,
              parallel_columns, align_weight, align_teacher, parallel_batch_size, align_loss, quiet,
              as_json, multilingual, multilingual_dir, data_attribution):
    """Fine-tune the encoder on scored pairs (columns base,ref,similarity).

    A shared-weight siamese model embeds both texts; their angular similarity
    1 - arccos(cos)/pi is trained with MSE against the score (see --loss for
    ranking losses; an optional 'negative' column holds hard negatives for
    them, as `pairs esco --hard-negatives` writes).  The defaults reproduce
    the article's recipe (Adam 1e-5, batch 8, 20 epochs, early stopping on
    val_loss with patience 3).  STS-B dev, the multilingual STS panel
    (--multilingual) and validation metrics are printed before and after; the run directory holds the tuned model
    (model.keras, saved_model/), history.csv, metrics.json, similarity.png and
    a model card.

    --parallel FILE keeps the languages aligned while the domain is learnt,
    on batches of parallel sentences beside the pairs (--align-loss: the
    teacher's embeddings or similarities distilled, or translations ranked).

    \b
    Example:
      domain-tune train data/esco_pairs_sample.csv --out runs/esco --sts-dir DIR
      domain-tune train pairs.csv --parallel parallel.csv --align-loss contrastive \\
        --align-weight 5 --parallel-batch-size 32
    """
    from domain_tune.training.embeddings import EmbeddingOptions
    from domain_tune.training.fit import FitOptions
    from domain_tune.training.run import TrainJob, TrainingFailed, train_run

    if no_sts:
        _warn_unused(["sts_dir", "sts_limit", "multilingual_dir"]
                     + ([] if (multilingual or "").strip().lower() == "none" else ["multilingual"]),
                     "has no effect with --no-sts; ignored")
    if not add_vocab:
        _warn_unused(["max_new_pieces", "new_rows"], "needs --add-vocab; ignored")
    if validation_file:
        _warn_unused(["validation_split"], "has no effect with --validation-file; ignored")
    if loss == "mse":
        _warn_unused(["scale"], "has no effect with --loss mse; ignored")

    job = TrainJob(
        pairs_path=pairs, out=out if out is not None else _default_out(), model=model, text_columns=text_columns,
        score_column=score_column, score_range=tuple(score_range),
        validation_split=validation_split, validation_file=validation_file,
        fit=FitOptions(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, clipnorm=clipnorm,
                       optimizer=optimizer, patience=patience, min_delta=min_delta,
                       monitor=monitor, seed=seed, loss=loss, scale=scale,
                       bucket_by_length=bucket,
                       lr_schedule=lr_schedule, warmup=warmup,
                       mini_batch_size=mini_batch_size, checkpoint_every=checkpoint_every),
        embeddings=EmbeddingOptions(strategy=embeddings, add_vocab=add_vocab,
                                    max_new_pieces=max_new_pieces, new_rows=new_rows,
                                    freeze_encoder=freeze_encoder),
        sts=not no_sts, sts_dir=sts_dir, sts_limit=sts_limit,
        multilingual=multilingual, multilingual_dir=multilingual_dir,
        plot_texts=_read_texts_file(texts_file) if texts_file else None,
        data_attribution=data_attribution, overwrite=overwrite, resume=resume, distribute=distribute, cpu_replicas=cpu_replicas,
        mixed_precision=mixed_precision, verbose=0 if (quiet or as_json) else 2,
        align=_align_options(parallel, parallel_columns, align_weight, align_teacher,
                             parallel_batch_size, align_loss),
    )
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        metrics = train_run(job, echo=echo)
    except TrainingFailed as e:  # a diverged run: too high a learning rate for the data
        raise BadInputError(str(e)) from None
    if as_json:
        _print_json(metrics)
    else:
        click.echo(
            f"Done in {metrics['seconds']:.0f} s: {_count(metrics['epochs_run'], 'epoch')} "
            f"(best {metrics['best_epoch']}), model in {metrics['out']}"
        )
