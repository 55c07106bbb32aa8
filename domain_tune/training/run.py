"""One fine-tuning run, end to end: validate, measure, train, measure, write.

:func:`train_run` is what ``domain-tune train`` calls; a notebook can call it
the same way.  The run directory it writes holds:

``model.keras``     the tuned encoder (``--model DIR`` of every command loads it)
``saved_model/``    a TF Hub-style SavedModel of the tuned encoder
``history.csv``     per-epoch loss, val_loss, MAE, MAPE
``metrics.json``    STS and validation before/after, epochs, data hash, options; the
                    multilingual STS panel before/after (key ``multilingual``)
``similarity.png``  base vs tuned similarity heatmaps
``README.md``       a model card
``logs/``           TensorBoard logs
"""

import dataclasses
import gc
import json
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

from domain_tune.datasets.pairs import (
    PairsWarning, read_pairs, sha256, split_pairs,
)
from domain_tune.datasets.sts import load_split
from domain_tune.datasets.stsb_multi import HELDOUT, heldout_sentences, load_for_training, \
    load_multilingual
from domain_tune.errors import BadInputError, TrainingInterrupted
from domain_tune.evaluation.multilingual import evaluate_panel, heldout_lines, summary_lines
from domain_tune.evaluation.sts import evaluate_sts
from domain_tune.export import save_model_dir
from domain_tune.outputs import finite_json
from domain_tune.models.layers import use_sparse_reads
from domain_tune.models.loading import load_model
from domain_tune.plotting import DEFAULT_TEXTS, BackgroundPlot, similarity_matrix
from domain_tune.seeding import seed_everything
from domain_tune.training import distillation, model_card, recipe, run_dir
from domain_tune.training.distillation import AlignOptions
from domain_tune.training.embeddings import EmbeddingOptions, prepare_encoder
from domain_tune.training.fit import (
    FitOptions, NonFiniteLoss, TrainingState, check_plan, compile_siamese, evaluate, fit,
)
from domain_tune.training.losses import POSITIVE, READS_NEGATIVES
from domain_tune.training.optimizers import sparse_table_access
from domain_tune.training.state_io import row_fingerprints




@dataclasses.dataclass
class TrainJob:
    """What one run does: the options of :mod:`~domain_tune.training.recipe`, grouped as the run
    uses them (build it with :meth:`from_options`)."""

    pairs_path: str
    out: str
    model: str = recipe.default("model")
    text_columns: tuple = recipe.default("text_columns")
    score_column: str = recipe.default("score_column")
    score_range: tuple = recipe.default("score_range")
    validation_split: float = recipe.default("validation_split")
    validation_file: str = recipe.default("validation_file")
    fit: FitOptions = dataclasses.field(default_factory=FitOptions)
    embeddings: EmbeddingOptions = dataclasses.field(default_factory=EmbeddingOptions)
    align: AlignOptions = None  # alignment-preserving training on parallel sentences
    sts: bool = not recipe.default("no_sts")
    sts_dir: str = recipe.default("sts_dir")
    sts_limit: int = recipe.default("sts_limit")
    multilingual: str = recipe.default("multilingual")  # panel languages: None (if data is found), "all", "none", a list
    multilingual_dir: str = recipe.default("multilingual_dir")
    plot_texts: list = recipe.default("texts")
    data_attribution: str = recipe.default("data_attribution")  # licence line (default: from a README.md beside the pairs)
    overwrite: bool = recipe.default("overwrite")
    resume: bool = recipe.default("resume")
    distribute: str = recipe.default("distribute")
    cpu_replicas: int = recipe.default("cpu_replicas")
    mixed_precision: str = recipe.default("mixed_precision")
    verbose: int = 1
    callbacks: list = dataclasses.field(default_factory=list)  # extra Keras callbacks

    @classmethod
    def from_options(cls, pairs_path, out, **options):
        """The job of ``train PAIRS --out OUT`` with ``options`` by their recipe names (``lr`` for
        ``learning_rate`` too); each is checked against its field and a bad one is an
        :class:`~domain_tune.errors.OptionError` naming it.  ``texts`` is a list of strings,
        ``quiet`` sets ``verbose`` 0."""
        values = {}
        for name, value in options.items():
            canonical = recipe.ALIASES.get(name, name)
            if canonical not in recipe.BY_NAME:
                raise recipe.unknown(name)
            value = recipe.normalise(canonical, value)
            recipe.BY_NAME[canonical].validate(value, name)
            values[canonical] = value
        job = cls(pairs_path=os.fspath(pairs_path), out=os.fspath(out))
        parts = {"job": job, "fit": job.fit, "embeddings": job.embeddings}
        for name, value in values.items():
            f = recipe.BY_NAME[name]
            if f.target is None or f.target.startswith("align.") or name == "texts":
                continue
            part, key = f.target.split(".", 1)
            setattr(parts[part], key, os.fspath(value) if isinstance(value, os.PathLike) else value)
        job.sts = not values.get("no_sts", False)
        if values.get("texts") is not None:
            job.plot_texts = list(values["texts"])
        if values.get("quiet"):
            job.verbose = 0
        job.align = distillation.align_options(values)
        return job

    def options(self):
        d = dataclasses.asdict(dataclasses.replace(self, callbacks=[]))
        d.pop("verbose")
        d.pop("callbacks")
        d["plot_texts"] = self.plot_texts if self.plot_texts is None else len(self.plot_texts)
        return d


class TrainingFailed(RuntimeError):
    """Training ran but produced no usable model (a non-finite loss)."""


def resume_settings(job):
    """What must be the same when a run is resumed: the model, the data (by content), and every
    option the recipe marks as shaping training (``shapes_training``).  ``epochs`` may change
    (to train longer) when the learning rate is constant; with a schedule it is part of the
    schedule, so it may not."""
    parts = {"job": job, "fit": job.fit, "embeddings": job.embeddings, "align": job.align}
    settings = {}
    for f in recipe.FIELDS:
        if not f.shapes_training or f.target is None:
            continue
        part, key = f.target.split(".", 1)
        if parts[part] is None:  # no alignment
            continue
        settings[key if part == "job" else f.target] = getattr(parts[part], key)
    if job.fit.lr_schedule == "constant":
        settings.pop("fit.epochs")
    settings = json.loads(json.dumps(settings, default=str))
    settings["pairs_sha256"] = sha256(job.pairs_path)
    if job.validation_file:
        settings["validation_sha256"] = sha256(job.validation_file)
    if job.align is not None:
        settings["align.parallel"] = sha256(job.align.parallel)
    return settings


def _read_data(job):
    def read(path):
        pairs = read_pairs(path, job.text_columns, job.score_column, job.score_range)
        if job.fit.loss not in READS_NEGATIVES:
            pairs.drop_negatives()  # not read by the loss: not worth encoding
        return pairs

    pairs = read(job.pairs_path)
    if job.validation_file:
        train, val = pairs, read(job.validation_file)
        if sha256(job.validation_file) == sha256(job.pairs_path):  # the file or a copy
            warnings.warn(f"--validation-file {job.validation_file} is the training file: the "
                          "validation loss measures the pairs trained on, and early stopping "
                          "cannot see overfitting", PairsWarning, stacklevel=2)
    else:
        train, val = split_pairs(pairs, job.validation_split, job.fit.seed)
    if (job.fit.loss in READS_NEGATIVES and job.align is None
            and not (np.asarray(train.similarity) >= POSITIVE).any()):
        raise BadInputError(
            f"{job.pairs_path}: no training pair is positive (score >= {POSITIVE}); the "
            f"{job.fit.loss} loss ranks the ref of positive pairs and would train nothing "
            "(use --loss mse or cosent for graded pairs)"
        )
    if (job.fit.loss in READS_NEGATIVES and job.fit.monitor == "val_loss" and val is not None
            and not (val.similarity >= POSITIVE).any()):
        warnings.warn(
            f"the validation pairs hold no positive pair (score >= {POSITIVE}), so the "
            f"{job.fit.loss} loss is 0 on them and early stopping cannot judge the epochs; "
            "use --monitor loss or more positive pairs", PairsWarning, stacklevel=2,
        )
    texts_per_batch = job.fit.batch_size * (2 + len(train.negatives()))
    if job.fit.mini_batch_size and job.fit.mini_batch_size >= texts_per_batch:
        warnings.warn(
            f"--mini-batch-size {job.fit.mini_batch_size} covers a whole batch ({texts_per_batch} "
            f"texts: --batch-size {job.fit.batch_size} pairs x {2 + len(train.negatives())}), so "
            "gradient caching saves no memory and only adds a second forward pass; use a "
            "smaller --mini-batch-size or leave it out", PairsWarning, stacklevel=2,
        )
    if val is None and job.fit.monitor == "val_loss" and job.fit.patience < job.fit.epochs:
        warnings.warn("no validation pairs (--validation-split 0): early stopping watches the "
                      "training loss", PairsWarning, stacklevel=2)
    return train, val


def _input_paths(job):
    """The files and folders ``job`` reads (an ``--out`` holding one is refused)."""
    vocab = job.embeddings.add_vocab
    return [job.pairs_path, job.validation_file, job.model,
            None if vocab in (None, "auto") else vocab,
            None if job.align is None else job.align.parallel,
            job.sts_dir, job.multilingual_dir]


def _load_sts(job):
    if not job.sts:
        return None
    try:
        return load_split("dev", job.sts_dir, job.sts_limit)
    except BadInputError as e:
        raise BadInputError(f"{e}; or pass --no-sts to train without the STS check") from None


def _count_negatives(pairs):
    return sum(1 for column in pairs.negatives().values() for n in column if n)


def _sts(model, data):
    if data is None:
        return None
    r = evaluate_sts(model, data.sentences1, data.sentences2, data.scores)
    return {"pearson": r["pearson"], "spearman": r["spearman"], "n": r["n"]}


def train_run(job, echo=print):
    """Run ``job``; returns the metrics dict also written to ``metrics.json``."""
    from domain_tune.training.distribute import is_chief, make_strategy

    job.fit.validate()
    job.embeddings.validate()
    recipe.check("mixed_precision", job.mixed_precision)
    out = run_dir.check_out(job.out, job.overwrite, job.resume, inputs=_input_paths(job))
    train_pairs, val_pairs = _read_data(job)
    check_plan(len(train_pairs), job.fit.epochs)
    parallel = _read_parallel(job)
    settings = resume_settings(job)
    if job.resume:
        run_dir.check_resume(out, settings)
    sts_data = _load_sts(job)
    panel_data = _panel_data(job, echo)
    strategy = make_strategy(job.distribute, job.cpu_replicas)  # before any TF op
    if not is_chief(strategy):
        # a non-chief worker takes part in every collective step but writes to a scratch copy
        scratch = tempfile.mkdtemp(prefix="domain-tune-worker-")
        scratch_out = os.path.join(scratch, "run")
        if job.resume:  # start from the chief's saved state (--out on a shared volume)
            state = os.path.join(run_dir.partial_dir(out), "state")
            if not os.path.isdir(state):
                raise BadInputError(f"--resume: no saved training state in {state}")
            shutil.copytree(state, os.path.join(run_dir.partial_dir(scratch_out), "state"))
        try:
            return _train_in(job, scratch_out, strategy, train_pairs, val_pairs, sts_data,
                             echo=lambda line: None, panel_data=panel_data,
                             parallel=parallel)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    with run_dir.locked(out):
        return _train_in(job, out, strategy, train_pairs, val_pairs, sts_data, echo, panel_data,
                         parallel, settings)


def _panel_data(job, echo):
    """The multilingual STS panel's data (read before training), or None (skipped)."""
    if not job.sts:
        return None
    data, notice = load_for_training(job.multilingual_dir, job.multilingual, "dev", job.sts_limit)
    if notice:
        echo(notice)
    if data is None:
        return None
    heldout = None  # the same languages on the train rows no parallel file holds
    if os.path.isfile(os.path.join(data.folder, f"stsb-{data.pivot}-train.csv")):
        heldout = load_multilingual(data.folder, HELDOUT, data.languages, job.sts_limit)
    return {"dev": data, HELDOUT: heldout}


def _panel(model, data):
    if data is None:
        return None
    return {split: evaluate_panel(model, d) for split, d in data.items() if d is not None and len(d)}


def _train_in(job, out, strategy, train_pairs, val_pairs, sts_data, echo, panel_data=None,
              parallel=None, settings=None):
    import keras

    started = time.perf_counter()
    texts = list(job.plot_texts or DEFAULT_TEXTS)
    work = run_dir.start(out, job.resume)
    if settings is not None and not job.resume:
        run_dir.record_settings(out, settings)
    try:
        seed_everything(job.fit.seed)
        if job.mixed_precision:
            keras.mixed_precision.set_global_policy(f"mixed_{job.mixed_precision}")
        with strategy.scope():
            base = load_model(job.model)
            # with a dense optimizer the table must never be read sparsely (see
            # layers.use_sparse_reads), not even by the evaluations before training
            use_sparse_reads(base, sparse_table_access(job.fit.optimizer))
            base_matrix = similarity_matrix(base, texts)
            sts_before = _sts(base, sts_data)
            panel_before = _panel(base, panel_data)
            if parallel is not None:  # the base teacher's embeddings are cached here, once
                parallel = distillation.prepare(job.align, parallel, base,
                                                bucket=job.fit.bucket_by_length, echo=echo)
            encoder, added = prepare_encoder(base, job.embeddings,
                                             train_pairs.base + train_pairs.ref, job.fit.seed)
            del base
            siamese = compile_siamese(encoder, job.fit, len(train_pairs),
                                      align_weight=job.align.weight if job.align else 0.0,
                                      align_loss=job.align.loss if job.align else "embedding")
        frozen_before = _frozen_rows(encoder)
        val_before = evaluate(siamese, val_pairs)
        if sts_before or val_before:
            echo(_table_row("before", sts_before, val_before))
        for split_panel in (panel_before or {}).values():
            echo(summary_lines(split_panel)[0])
        tensorboard = keras.callbacks.TensorBoard(os.path.join(work, "logs"), profile_batch=0)
        fit_started = time.perf_counter(), time.process_time()
        state = fit(siamese, train_pairs, val_pairs, job.fit, os.path.join(work, "state"),
                    resume=job.resume, callbacks=[tensorboard, *job.callbacks],
                    verbose=job.verbose, parallel=parallel,
                    final_state=False)  # the published run holds the model, not the state
        fit_wall, fit_cpu = (time.perf_counter() - fit_started[0],
                             time.process_time() - fit_started[1])
        sts_after = _sts(encoder, sts_data)
        panel_after = _panel(encoder, panel_data)
        # the trained model's own evaluation function, already traced for the epochs' validation
        val_after = evaluate(siamese, val_pairs)
        embeddings = {
            "strategy": job.embeddings.strategy,
            "added_terms": [a.term for a in added],
            "new_rows": len(added),
            "frozen_rows_changed": _rows_changed(frozen_before, _frozen_rows(encoder)),
        }
        # Free the optimizer (2 x 262 MB of moment tables with a trainable USE-m3
        # table) before saving: Keras holds it from the model and the callbacks.
        _detach([state, tensorboard, *job.callbacks])
        del siamese
        gc.collect()
        if sts_after or val_after:
            echo(_table_row("after", sts_after, val_after))
        for split in (panel_after or {}):
            for line in summary_lines(panel_before[split], panel_after[split]):
                echo(line)
        if panel_after and HELDOUT in panel_after:
            for line in heldout_lines(panel_before[HELDOUT], panel_after[HELDOUT],
                                      aligned=parallel is not None):
                echo(line)
        metrics = {
            "dimensions": int(_vector_size(encoder)),
            "sts": {"split": "dev", "before": sts_before, "after": sts_after}
            if sts_data is not None else None,
            "multilingual": {"before": panel_before["dev"], "after": panel_after["dev"]}
            if panel_data is not None else None,
            # the same languages on stsb-multi-mt train rows that no parallel file holds
            "multilingual_heldout": {"before": panel_before[HELDOUT], "after": panel_after[HELDOUT]}
            if panel_data is not None and HELDOUT in panel_before else None,
            "validation": {"before": val_before, "after": val_after},
            "epochs_run": len(state.history),
            "best_epoch": state.best_epoch + 1 if state.best_epoch >= 0 else None,
            "stopped_early": state.stopped_early,
            "train_pairs": len(train_pairs),
            "val_pairs": len(val_pairs) if val_pairs is not None else 0,
            "hard_negatives": _count_negatives(train_pairs),
            "replicas": strategy.num_replicas_in_sync,
            "embeddings": embeddings,
            "alignment": distillation.summary(job.align, parallel.sentences, state.history)
            if parallel is not None else None,
            "data_sha256": sha256(job.pairs_path),
            "validation_sha256": sha256(job.validation_file) if job.validation_file else None,
            "options": job.options(),
            "recipe": recipe.record(),  # each option's default and flag: the card needs nothing else
            "seconds": round(time.perf_counter() - started, 1),
            "data_attribution": job.data_attribution or model_card.data_attribution(job.pairs_path),
            "environment": model_card.environment(),
            # the fit alone: wall time, and CPU time of all threads (a cost measure that a
            # busy machine does not inflate)
            "fit_seconds": round(fit_wall, 1),
            "fit_cpu_seconds": round(fit_cpu, 1),
        }
        _write_outputs(work, job, encoder, state, metrics, base_matrix, texts)
    except TrainingInterrupted as e:
        if TrainingState.saved_epoch(os.path.join(work, "state")) is None:  # nothing to resume
            if not job.resume:
                run_dir.discard(out)
            raise TrainingInterrupted(str(e), e.exit_code) from None
        raise TrainingInterrupted(
            f"{e} in {run_dir.partial_dir(out)}. Resume with the same command plus --resume",
            e.exit_code,
        ) from None
    except NonFiniteLoss as e:
        run_dir.discard(out)
        raise TrainingFailed(str(e)) from None
    except BaseException:
        if not job.resume:
            run_dir.discard(out)
        raise
    finally:
        if job.mixed_precision:
            keras.mixed_precision.set_global_policy("float32")
    run_dir.publish(out, job.overwrite)
    metrics["out"] = out
    return metrics


def _without_heldout(parallel, multilingual_dir):
    """``parallel`` without the pairs that hold a sentence of the held-out panel (when the
    stsb-multi-mt data is at hand), so the panel never measures sentences trained on."""
    from domain_tune.datasets.parallel import drop_heldout

    keys = heldout_sentences(multilingual_dir)
    kept, dropped = drop_heldout(parallel, keys)
    if dropped:
        warnings.warn(f"--parallel {parallel.path}: {dropped:,} of {len(parallel):,} pairs left out: "
                      "they hold a sentence of the held-out multilingual panel (build the file "
                      "with parallel-sentences to leave them out)", PairsWarning, stacklevel=2)
    if not len(kept):
        raise BadInputError(f"--parallel {parallel.path}: every pair holds a sentence of the "
                            "held-out multilingual panel; use sentences from elsewhere")
    return kept


def _read_parallel(job):
    """The parallel sentences of an alignment-preserving run (``None`` without)."""
    if job.align is None:
        return None
    from domain_tune.datasets.parallel import read_parallel

    job.align.validate()
    parallel = read_parallel(job.align.parallel, job.align.columns)
    parallel = _without_heldout(parallel, job.multilingual_dir)
    distinct = len(set(zip(parallel.source, parallel.translation)))
    if job.align.loss != "embedding" and distinct < 2:
        raise BadInputError(
            f"--parallel {job.align.parallel}: --align-loss {job.align.loss} compares the sentences "
            f"of a batch with each other and needs at least 2 distinct pairs (got {distinct}); "
            "add sentences or use --align-loss embedding")
    return parallel


def _detach(callbacks):
    for callback in callbacks:
        callback.set_model(None)


def _frozen_rows(encoder):
    """Fingerprints of the rows the strategy freezes (``None`` if nothing is frozen)."""
    from domain_tune.models.semi_frozen import SemiFrozenEmbedding

    layer = getattr(getattr(encoder, "backbone", None), "token_embedding", None)
    if isinstance(layer, SemiFrozenEmbedding) and layer.mode in ("semi-frozen", "frozen"):
        return row_fingerprints(layer.pretrained_embeddings)
    return None


def _rows_changed(before, after):
    if before is None:
        return None
    return int(np.any(before != after, axis=1).sum())


def _table_row(label, sts, val):
    parts = [f"{label:>6}:"]
    if sts:
        parts.append(f"STS-B dev Pearson {sts['pearson']:.4f} Spearman {sts['spearman']:.4f}")
    if val:
        parts.append(f"validation loss {val['loss']:.5f} MAE {val['mae']:.4f}")
    return "  ".join(parts)


def _vector_size(encoder):
    """The size of ``encoder``'s vectors (its ``output_dim``, else that of one embedded text)."""
    dim = getattr(encoder, "output_dim", None)
    if dim is None:
        from domain_tune.embedding import encode

        dim = encode(encoder, ["a"]).shape[1]
    return dim


def _write_outputs(work, job, encoder, state, metrics, base_matrix, texts):
    pd.DataFrame(state.history).to_csv(os.path.join(work, "history.csv"), index=False)
    with open(os.path.join(work, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(finite_json(metrics), f, indent=2, allow_nan=False)
    # before the export, which then finds the model's inference function traced
    tuned_matrix = similarity_matrix(encoder, texts)
    # the heatmaps are drawn by another process while the model is saved (see BackgroundPlot)
    plot = BackgroundPlot([base_matrix, tuned_matrix],
                          [f"base: {job.model}", f"tuned: {os.path.basename(job.out)}"],
                          texts, os.path.join(work, "similarity.png"))
    try:
        save_model_dir(encoder, work)
    except BaseException:
        plot.cancel()
        raise
    plot.wait()
    with open(os.path.join(work, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card.render(metrics))
