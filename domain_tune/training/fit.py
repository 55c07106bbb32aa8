"""The training loop: data pipeline, callbacks, resumable state, signals.

* Each epoch's shuffle is a permutation drawn from ``(seed, epoch)``, so a run
  resumed at epoch ``k`` sees exactly the batches an uninterrupted run would.
* :class:`TrainingState` saves the model and optimizer weights, the best
  weights so far, the early-stopping counters and the history into
  ``state_dir`` (a checkpoint) at the end of an epoch once
  ``FitOptions.checkpoint_every`` seconds have passed since the last one, and
  always when training ends; :func:`fit` restores the last checkpoint with
  ``resume=True``.  The best weights of the epochs in between are kept in
  memory.
* SIGINT / SIGTERM stop training after the current batch; the last checkpoint
  stays on disk and :class:`~domain_tune.errors.TrainingInterrupted` is raised
  (exit code 130 / 143).
* A NaN or infinite loss stops the run with :class:`NonFiniteLoss`.
"""

import contextlib
import dataclasses
import json
import math
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from domain_tune.errors import BadInputError, TrainingInterrupted
from domain_tune.models.layers import use_sparse_reads
from domain_tune.outputs import atomic_file
from domain_tune.training.siamese import SiameseModel
from domain_tune.training import recipe
from domain_tune.training.batches import epoch_batches
from domain_tune.training.distribute import shard_data
from domain_tune.training.optimizers import (
    learning_rate, make_optimizer, sparse_table_access,
)
from domain_tune.training.state_io import (VariableSnapshot, all_finite, load_variables,
                                           save_variables)

MONITORS = recipe.MONITORS
# The resumable state of a trainable USE-m3 table is about 0.8 GB (the table and both Adam
# moments): written after every epoch it dominated short epochs (results/speed.md).  Ten
# minutes bounds the training lost to a crash; an epoch longer than that still ends in one.
DEFAULT_CHECKPOINT_EVERY = recipe.default("checkpoint_every")


@dataclasses.dataclass
class FitOptions:
    """The optimisation part of the recipe; defaults (the article's) from :mod:`~domain_tune.training.recipe`."""

    epochs: int = recipe.default("epochs")
    batch_size: int = recipe.default("batch_size")
    learning_rate: float = recipe.default("learning_rate")
    beta_1: float = recipe.default("beta_1")
    beta_2: float = recipe.default("beta_2")
    epsilon: float = recipe.default("epsilon")
    clipnorm: float = recipe.default("clipnorm")
    optimizer: str = recipe.default("optimizer")
    patience: int = recipe.default("patience")
    min_delta: float = recipe.default("min_delta")
    monitor: str = recipe.default("monitor")
    seed: int = recipe.default("seed")
    loss: str = recipe.default("loss")
    lr_schedule: str = recipe.default("lr_schedule")  # after warm-up: constant, linear or cosine decay to 0
    warmup: float = recipe.default("warmup")  # fraction of all training steps spent warming up from 0
    bucket_by_length: bool = recipe.default("bucket")
    jit_compile: bool = False
    scale: float = recipe.default("scale")  # of the cosent and in-batch losses (None: their default, 20)
    mini_batch_size: int = recipe.default("mini_batch_size")  # GradCache: texts the encoder sees at once
    # Seconds of training between two checkpoints of the resumable state (written at the end
    # of an epoch, and always after the last); 0: after every epoch.
    checkpoint_every: float = recipe.default("checkpoint_every")

    def validate(self):
        """Each option against its field of :mod:`~domain_tune.training.recipe` (the error names it)."""
        recipe.check_group("fit", self)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


# --- data ----------------------------------------------------------------------


def _gather(pairs):
    """``indices -> ({"base", "ref"[, "negative", ...]}, similarity)`` over ``pairs``."""
    texts = {"base": pairs.base, "ref": pairs.ref, **pairs.negatives()}
    texts = {k: tf.constant(v, tf.string) for k, v in texts.items()}
    sim = tf.constant(pairs.similarity, tf.float32)

    def fn(idx):
        return {k: tf.gather(v, idx) for k, v in texts.items()}, tf.gather(sim, idx)

    return fn


def pair_lengths(pairs):
    columns = [pairs.base, pairs.ref, *pairs.negatives().values()]
    return [max(map(len, texts)) for texts in zip(*columns)]


def train_dataset(pairs, batch_size, seed, first_epoch, epochs, bucket=True, parallel=None):
    """Batches of epochs ``first_epoch .. epochs-1`` (see :func:`epoch_batches`).

    ``parallel`` (:class:`~domain_tune.training.distillation.ParallelBatches`)
    adds a batch of parallel sentences to each, as ``x["parallel"]``.
    """
    lengths = pair_lengths(pairs)
    batches = [b for e in range(first_epoch, epochs)
               for b in epoch_batches(lengths, batch_size, seed, e, bucket)]
    steps = steps_per_epoch(len(pairs), batch_size)
    flat = np.concatenate(batches).astype(np.int64)
    limits = np.cumsum([len(b) for b in batches]).astype(np.int64)
    ragged = tf.RaggedTensor.from_row_limits(flat, limits)
    ds = shard_data(tf.data.Dataset.from_tensor_slices(ragged))
    ds = ds.map(_gather(pairs))
    if parallel is not None:
        ds = shard_data(parallel.attach(ds, seed, first_epoch, epochs, steps))
    return without_autotune(ds.prefetch(2)), steps


def eval_dataset(pairs, batch_size):
    idx = shard_data(tf.data.Dataset.range(len(pairs)).batch(batch_size))
    return without_autotune(idx.map(_gather(pairs)).prefetch(2))


def without_autotune(ds):
    """``ds`` without tf.data's autotuning thread.

    The batches here are gathers from in-memory tensors, microseconds each,
    so there is nothing to tune.  And destroying an autotuned iterator waits
    for the tuning thread's next wake-up: up to several seconds after a long
    ``fit`` (measured: 4-5 s after 10 epochs in one run of two).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


# --- state -----------------------------------------------------------------------


class TrainingState(keras.callbacks.Callback):
    """Early stopping that restores the best weights, and a resumable state on disk.

    Equivalent to ``keras.callbacks.EarlyStopping(monitor, patience, min_delta,
    restore_best_weights=True)``, with its counters saved so a resumed run makes
    the same decisions.

    The state (a checkpoint) is written at the end of an epoch when
    ``checkpoint_every`` seconds have passed since the last one (or since
    training started), and at the end of training; ``0`` writes it after
    every epoch.  An improved epoch between checkpoints keeps its weights in
    memory (:class:`~domain_tune.training.state_io.VariableSnapshot`); the
    next checkpoint writes them to ``best.h5``, so the files on disk always
    belong to one epoch.  ``final_state=False`` skips the write after the last
    epoch, for a caller that discards the state once training succeeds (``train``
    publishes the model and deletes it): an interrupted run still has its last
    checkpoint.
    """

    WEIGHTS = "last.h5"  # model and optimizer variables (state_io format)
    BEST = "best.h5"  # the encoder's variables at the best epoch
    META = "state.json"

    def __init__(self, state_dir, monitor, patience, min_delta, interrupt=None, sparse=False,
                 checkpoint_every=0.0, final_state=True):
        super().__init__()
        self.final_state = final_state  # write the state after the last epoch too
        self.state_dir = state_dir
        self.sparse = sparse  # tables in copy-on-read mode: write them in row blocks
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.interrupt = interrupt
        self.checkpoint_every = float(checkpoint_every)
        self.best = math.inf
        self.best_epoch = -1
        self.wait = 0
        self.history = []
        self.stopped_early = False
        self.next_epoch = 0  # of the weights in the model
        self.saved_next_epoch = None  # of the last checkpoint (None: none written by this run)
        self.checkpoints = []  # next_epoch of every checkpoint this run wrote
        self._best_in_memory = VariableSnapshot(sparse)
        self._best_in_memory_epoch = None  # the epoch whose weights it holds (None: stale)
        self._best_unsaved = False  # the best weights are newer in memory than in best.h5
        self._last_write = time.monotonic()

    def on_train_begin(self, logs=None):
        self._last_write = time.monotonic()
        if self.checkpoint_every > 0:  # improved epochs between checkpoints are kept in memory
            self._best_in_memory.reserve(self.model.encoder.trainable_weights)

    # early stopping
    def on_epoch_end(self, epoch, logs=None):
        if self.interrupt is not None and self.interrupt.signum is not None:
            return  # a partial epoch: neither judged nor saved
        logs = dict(logs or {})
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"early stopping monitors {self.monitor!r}, which the logs lack")
        self.next_epoch = epoch + 1
        due = time.monotonic() - self._last_write >= self.checkpoint_every
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if due:  # written with the checkpoint below, straight from the variables
                self._best_unsaved = False
                self._save_best_from_model()
            else:
                # the encoder's weights only: the optimizer state of the best epoch is never needed
                self._best_in_memory.capture(self.model.encoder.trainable_weights)
                self._best_in_memory_epoch = epoch
                self._best_unsaved = True
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True
                self.stopped_early = True
        if due:
            self._best_in_memory.release_unused()  # reserved, but checkpoints came first
            self._save()

    def on_train_end(self, logs=None):
        if self.interrupt is not None and self.interrupt.signum is not None:
            return  # the weights are those of a partial epoch: the last checkpoint stays
        if not self.history or not math.isfinite(self.history[-1].get("loss", 0.0)):
            return  # nothing trained, or a non-finite loss (the run is discarded)
        if self.final_state and self.saved_next_epoch != self.next_epoch:
            self._save()  # the final state, whenever the last checkpoint was
        if self.best_epoch >= 0:
            # training is over: row blocks, no whole-table transient beside the moments
            if self._best_in_memory_epoch == self.best_epoch:
                self._best_in_memory.restore(self.model.encoder.trainable_weights, sparse=True)
            else:
                self.load_best(self.model.encoder, self.state_dir, sparse=True)

    @classmethod
    def load_best(cls, encoder, state_dir, sparse=False):
        load_variables(os.path.join(state_dir, cls.BEST), encoder.trainable_weights, sparse)

    @staticmethod
    def _variables(model):
        # What training changes.  Frozen weights are rebuilt from the same model
        # on resume, so saving them (the 262 MB table, when frozen) is wasted.
        return list(model.trainable_weights) + list(model.optimizer.variables)

    # persistence
    def _save_best_from_model(self):
        save_variables(os.path.join(self.state_dir, self.BEST),
                       self.model.encoder.trainable_weights, self.sparse)
        self._best_in_memory_epoch = None  # older than best.h5 now (its buffers are reused)

    def _save(self):
        if self._best_unsaved:
            self._best_in_memory.save(os.path.join(self.state_dir, self.BEST))
            self._best_unsaved = False
        save_variables(os.path.join(self.state_dir, self.WEIGHTS), self._variables(self.model),
                       self.sparse)
        meta = {"next_epoch": self.next_epoch, "best": self.best, "best_epoch": self.best_epoch,
                "wait": self.wait, "stopped_early": self.stopped_early, "history": self.history}
        with atomic_file(os.path.join(self.state_dir, self.META)) as tmp, open(tmp, "w") as f:
            json.dump(meta, f)
        self.saved_next_epoch = self.next_epoch
        self.checkpoints.append(self.next_epoch)
        self._last_write = time.monotonic()

    @classmethod
    def saved_epoch(cls, state_dir):
        path = os.path.join(state_dir, cls.META)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def restore(self, model):
        meta = self.saved_epoch(self.state_dir)
        load_variables(os.path.join(self.state_dir, self.WEIGHTS), self._variables(model),
                       self.sparse)
        if hasattr(model.optimizer, "forget_active_rows"):
            model.optimizer.forget_active_rows()  # derived from the moments just loaded
        self.best, self.best_epoch = meta["best"], meta["best_epoch"]
        self.wait, self.history = meta["wait"], meta["history"]
        self.stopped_early = meta["stopped_early"]
        self.next_epoch = self.saved_next_epoch = meta["next_epoch"]
        return meta["next_epoch"]


class _Interrupt:
    """Records SIGINT / SIGTERM while installed; training stops after the batch."""

    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    @contextlib.contextmanager
    def installed(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class _StopOnSignalOrNaN(keras.callbacks.Callback):
    def __init__(self, interrupt):
        super().__init__()
        self.interrupt = interrupt
        self.nonfinite = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(np.asarray(loss)).all():
            self.nonfinite = (f"training loss became {float(np.asarray(loss).reshape(-1)[0])} "
                              f"at batch {batch + 1}")
            self.model.stop_training = True
        if self.interrupt.signum is not None:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # the step that makes the weights NaN reports the loss from before it: with one
        # step left in the run (or in an epoch), only the validation loss shows it
        loss = (logs or {}).get("val_loss")
        if self.nonfinite is None and loss is not None and not np.isfinite(np.asarray(loss)).all():
            self.nonfinite = (f"validation loss became {float(np.asarray(loss).reshape(-1)[0])} "
                              f"after epoch {epoch + 1}")
            self.model.stop_training = True


def nonfinite_weights(variables, sparse=False):
    """Names of the ``variables`` that hold a NaN or infinite value.

    ``sparse``: tables in TensorFlow's copy-on-read mode are checked in blocks of
    rows (see :func:`~domain_tune.training.state_io.all_finite`).
    """
    return [v.path if hasattr(v, "path") else v.name for v in variables
            if not all_finite(v, sparse)]


# --- fit -----------------------------------------------------------------------------


# Training plans every epoch's batches up front (pair indices, pure functions of seed and
# epoch); pairs x epochs beyond this would take gigabytes and minutes before the first step.
MAX_PAIR_VISITS = 20_000_000


def check_plan(n_pairs, epochs):
    """Refuse an ``--epochs`` whose plan of batches (``n_pairs x epochs`` indices) is too big."""
    if n_pairs * epochs > MAX_PAIR_VISITS:
        raise BadInputError(
            f"--epochs {epochs:,} with {n_pairs:,} training pairs is {n_pairs * epochs:,} pair "
            f"visits, more than the {MAX_PAIR_VISITS:,} training plans for; lower --epochs "
            "(early stopping, --patience, ends a run when validation stops improving)"
        )


def steps_per_epoch(n_pairs, batch_size):
    return math.ceil(n_pairs / batch_size)


def compile_siamese(encoder, options, n_pairs=None, align_weight=0.0, align_loss="embedding"):
    """The siamese model of ``encoder``, compiled for ``options``.

    ``n_pairs`` (the number of training pairs) sets the length of a
    learning-rate schedule, and is required with one.  ``align_weight``
    weighs the distillation term of batches of parallel sentences, ``align_loss``
    names it (see :mod:`domain_tune.training.distillation`).
    """
    # a dense optimizer updates whole tables: keep them out of copy-on-read mode
    use_sparse_reads(encoder, sparse_table_access(options.optimizer))
    # LazyAdam sums a table's gradient slices before squaring them, so encoding each
    # distinct text of a batch once changes nothing but the time; Keras' Adam (the
    # article's numbers) squares every slice, so it sees every place of a text.
    model = SiameseModel(encoder, loss=options.loss, scale=options.scale,
                         mini_batch_size=options.mini_batch_size,
                         align_weight=align_weight, align_loss=align_loss,
                         distinct_texts=options.optimizer == "lazy-adam", name="siamese")
    total = (options.epochs * steps_per_epoch(n_pairs, options.batch_size)) if n_pairs else None
    rate = learning_rate(options.learning_rate, options.lr_schedule, options.warmup, total)
    model.compile(
        optimizer=make_optimizer(options.optimizer, rate, options.beta_1,
                                 options.beta_2, options.epsilon, options.clipnorm),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae"),
                 keras.metrics.MeanAbsolutePercentageError(name="mape")],
        jit_compile=options.jit_compile,
    )
    model.build_compiled()
    return model


def evaluate(model, pairs, batch_size=64):
    """``{"loss", "mae", "mape"}`` of a compiled siamese model on ``pairs``."""
    if pairs is None or len(pairs) == 0:
        return None
    result = model.evaluate(eval_dataset(pairs, batch_size), verbose=0, return_dict=True)
    return {k: float(v) for k, v in result.items()}


def fit(model, train_pairs, val_pairs, options, state_dir, resume=False, callbacks=(),
        verbose=1, parallel=None, final_state=True):
    """Train a compiled siamese model; returns the :class:`TrainingState` (history inside).

    ``state_dir`` receives the resumable state; with ``resume=True`` training
    continues from the last complete epoch saved there.  ``parallel``
    (:class:`~domain_tune.training.distillation.ParallelBatches`) adds a batch
    of parallel sentences to every step (alignment-preserving training).
    ``final_state=False``: no state written after the last epoch (see
    :class:`TrainingState`).
    """
    options.validate()
    monitor = options.monitor if val_pairs is not None else "loss"
    os.makedirs(state_dir, exist_ok=True)
    interrupt = _Interrupt()
    distributed = model.distribute_strategy is not tf.distribute.get_strategy()
    state = TrainingState(state_dir, monitor, options.patience, options.min_delta, interrupt,
                          sparse=sparse_table_access(options.optimizer, distributed),
                          checkpoint_every=options.checkpoint_every, final_state=final_state)
    first_epoch = 0
    if resume:
        if TrainingState.saved_epoch(state_dir) is None:
            raise BadInputError(f"nothing to resume: no saved training state in {state_dir}")
        _build_optimizer(model)
        first_epoch = state.restore(model)
    if first_epoch >= options.epochs or state.stopped_early:
        if state.best_epoch >= 0:
            TrainingState.load_best(model.encoder, state_dir)
        return state
    ds, steps = train_dataset(train_pairs, options.batch_size, options.seed, first_epoch,
                              options.epochs, bucket=options.bucket_by_length,
                              parallel=parallel)
    guard = _StopOnSignalOrNaN(interrupt)
    with interrupt.installed():
        model.fit(
            ds,
            epochs=options.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            validation_data=eval_dataset(val_pairs, 64) if val_pairs is not None else None,
            callbacks=[guard, state, *callbacks],
            shuffle=False,  # the dataset is already shuffled per epoch
            verbose=verbose,
        )
    if guard.nonfinite is None and interrupt.signum is None:
        broken = nonfinite_weights(model.trainable_variables, state.sparse)
        if broken:
            guard.nonfinite = (f"the weights became NaN or infinite ({_count_names(broken)}) "
                               f"in the last step")
    if guard.nonfinite is not None:
        raise NonFiniteLoss(f"{guard.nonfinite}; lower --learning-rate or check the data "
                            "(no model was written)")
    if interrupt.signum is not None:
        name = "SIGINT" if interrupt.signum == signal.SIGINT else "SIGTERM"
        code = 130 if interrupt.signum == signal.SIGINT else 143
        saved = TrainingState.saved_epoch(state_dir)
        kept = (f"the checkpoint after epoch {saved['next_epoch']} is kept" if saved else
                "no checkpoint had been written yet (see --checkpoint-every)")
        raise TrainingInterrupted(f"training stopped by {name} in epoch {state.next_epoch + 1}; "
                                  f"{kept}", exit_code=code)
    return state


def _count_names(names, shown=2):
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _build_optimizer(model):
    if not model.built:
        model.build()
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
