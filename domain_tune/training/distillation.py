"""Alignment-preserving training: multilingual knowledge distillation.

Reimers & Gurevych 2020 ("Making monolingual sentence embeddings multilingual
using knowledge distillation"): for a source sentence ``s`` and its
translation ``t``, a teacher's embedding of ``s`` is the target of the tuned
encoder's embeddings of *both* ``s`` and ``t``::

    align = mean over the batch of (|enc(s) - T(s)|^2 + |enc(t) - T(s)|^2) / 2

(squared Euclidean distances over the embedding dimensions; for unit vectors
``|a - b|^2 = 2 - 2 cos(a, b)``).  ``train --parallel FILE`` adds
``weight x align`` to the pair loss, on a batch of parallel sentences drawn
beside every batch of domain pairs.  Two teachers:

* ``base``: the encoder before tuning, frozen.  Its embeddings of the distinct
  source sentences are computed once, before training, and fed with the
  batches; no teacher model exists during training.  Keeps the tuned space
  where the base's was, in every language of the parallel data.
* ``self``: the tuned encoder's own embedding of ``s`` with the gradient
  stopped.  The source term is then 0 and the translation is pulled to
  wherever the domain tuning moves its source: the domain shift is carried to
  the other languages.

The parallel batches are a pure function of ``(seed, step)`` (see
:meth:`ParallelBatches.indices`), so a run resumed at epoch ``k`` sees the
batches an uninterrupted run would.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from domain_tune.errors import BadInputError

TEACHERS = ("base", "self")
DEFAULT_WEIGHT = 1.0
DEFAULT_TEACHER = "base"
DEFAULT_BATCH_SIZE = 16
METRIC = "align_loss"  # the history column: the unweighted distillation term, mean over the epoch


@dataclasses.dataclass
class AlignOptions:
    """``train --parallel FILE [--parallel-columns S,T] [--align-weight W] [--align-teacher T]``."""

    parallel: str = None  # the parallel CSV
    columns: tuple = None  # (source, translation); None: the first two columns
    weight: float = DEFAULT_WEIGHT
    teacher: str = DEFAULT_TEACHER
    batch_size: int = DEFAULT_BATCH_SIZE  # parallel sentences per training step

    def validate(self):
        if not self.parallel:
            raise BadInputError("alignment-preserving training needs --parallel FILE")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise BadInputError("--align-weight must be a positive number")
        if self.teacher not in TEACHERS:
            raise BadInputError(f"--align-teacher must be one of {', '.join(TEACHERS)}")
        if self.batch_size < 1:
            raise BadInputError("--parallel-batch-size must be at least 1")


# --- the loss ---------------------------------------------------------------------------


def distillation_loss(student_source, student_translation, teacher):
    """``mean_i (|s_i - t_i|^2 + |r_i - t_i|^2) / 2`` for student embeddings ``s`` (sources),
    ``r`` (translations) and teacher embeddings ``t`` of the sources (an empty batch: 0)."""
    teacher = tf.cast(teacher, tf.float32)
    dist = (tf.reduce_sum(tf.square(tf.cast(student_source, tf.float32) - teacher), axis=-1)
            + tf.reduce_sum(tf.square(tf.cast(student_translation, tf.float32) - teacher), axis=-1))
    n = tf.cast(tf.shape(dist)[0], tf.float32)
    return tf.reduce_sum(dist) / (2.0 * tf.maximum(n, 1.0))


def alignment_loss(encoder, parallel, training=True):
    """The distillation term of one batch ``{"source", "translation"[, "teacher"]}``.

    Sources and translations go through ``encoder`` in one call.  Without a
    ``"teacher"`` tensor (``--align-teacher self``) the teacher is the
    encoder's own embedding of the source, with the gradient stopped.
    """
    source, translation = parallel["source"], parallel["translation"]
    n = tf.shape(source)[0]
    out = encoder(tf.concat([source, translation], axis=0), training=training)
    student_source, student_translation = out[:n], out[n:]
    teacher = parallel.get("teacher")
    if teacher is None:
        teacher = tf.stop_gradient(student_source)
    return distillation_loss(student_source, student_translation, teacher)


# --- the batches ----------------------------------------------------------------------


def teacher_embeddings(encoder, sources, progress=False):
    """``(source_index, table)``: each distinct source embedded once by ``encoder``.

    ``table[source_index[i]]`` is the teacher's embedding of ``sources[i]``.
    """
    from domain_tune.embedding import encode

    distinct, index = np.unique(np.asarray(sources, dtype=object).astype(str),
                                return_inverse=True)
    table = encode(encoder, list(distinct), progress=progress, label="Teacher embeddings")
    return index.reshape(-1).astype(np.int64), table


class ParallelBatches:
    """A batch of parallel sentences for every training step.

    The rows are drawn in *rounds*: round ``k`` is an order of all rows drawn
    from ``(seed, k)`` and bucketed by length like the pair batches (see
    :func:`domain_tune.training.fit.epoch_batches`), cut into full batches
    (a round has ``len // batch_size`` of them; the few rows left over come
    in other rounds).  Step ``g`` of training (counted over all epochs) takes
    batch ``g mod m`` of round ``g div m``: every sentence is seen before any
    is seen twice, whatever the number of pair batches per epoch.
    """

    def __init__(self, sentences, batch_size=DEFAULT_BATCH_SIZE, teacher=None, bucket=True):
        if len(sentences) == 0:
            raise BadInputError(f"parallel file {sentences.path} holds no sentences")
        self.sentences = sentences
        self.batch_size = min(int(batch_size), len(sentences))
        self.teacher = teacher  # (source_index, table) or None: the encoder itself
        self.bucket = bucket
        self.lengths = np.array([max(len(s), len(t)) for s, t in
                                 zip(sentences.source, sentences.translation)])
        self._rounds = {}

    @property
    def per_round(self):
        return len(self.sentences) // self.batch_size

    def _round(self, seed, k):
        if k not in self._rounds:
            from domain_tune.training.fit import epoch_batches

            batches = epoch_batches(self.lengths, self.batch_size, seed, k, self.bucket)
            self._rounds = {k: [b for b in batches if len(b) == self.batch_size]}
        return self._rounds[k]

    def indices(self, seed, first_step, steps):
        """Row indices of steps ``first_step .. first_step + steps - 1``: ``(steps, batch_size)``."""
        m = self.per_round
        rows = [self._round(seed, g // m)[g % m] for g in range(first_step, first_step + steps)]
        return np.array(rows, np.int64).reshape(steps, self.batch_size)

    def dataset(self, seed, first_step, steps):
        """A ``tf.data.Dataset`` of ``{"source", "translation"[, "teacher"]}`` batches."""
        source = tf.constant(self.sentences.source, tf.string)
        translation = tf.constant(self.sentences.translation, tf.string)
        if self.teacher is not None:
            index, table = (tf.constant(a) for a in self.teacher)

        def gather(idx):
            batch = {"source": tf.gather(source, idx), "translation": tf.gather(translation, idx)}
            if self.teacher is not None:
                batch["teacher"] = tf.gather(table, tf.gather(index, idx))
            return batch

        rows = tf.data.Dataset.from_tensor_slices(self.indices(seed, first_step, steps))
        return rows.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

    def attach(self, pair_dataset, seed, first_epoch, epochs, steps_per_epoch):
        """``pair_dataset`` (``(x, y)`` batches of epochs ``first_epoch..epochs-1``) with
        ``x["parallel"]`` added to each batch."""
        steps = (epochs - first_epoch) * steps_per_epoch
        parallel = self.dataset(seed, first_epoch * steps_per_epoch, steps)

        def merge(pair, batch):
            x, y = pair
            return {**x, "parallel": batch}, y

        return tf.data.Dataset.zip((pair_dataset, parallel)).map(merge)


def prepare(options, sentences, base, bucket=True, echo=None):
    """The :class:`ParallelBatches` of a run; with the base teacher, its embeddings cached now.

    ``base`` is the encoder training starts from, before any change to it.
    """
    teacher = None
    if options.teacher == "base":
        teacher = teacher_embeddings(base, sentences.source, progress=echo is not None)
        if echo is not None:
            echo(f"alignment: {len(sentences):,} parallel sentences, teacher 'base' "
                 f"({len(teacher[1]):,} distinct sources embedded once)")
    elif echo is not None:
        echo(f"alignment: {len(sentences):,} parallel sentences, teacher 'self'")
    return ParallelBatches(sentences, options.batch_size, teacher, bucket)


def summary(options, sentences, history):
    """The ``"alignment"`` entry of ``metrics.json``."""
    from domain_tune.datasets.pairs import sha256

    return {
        "parallel": sentences.path,
        "parallel_sha256": sha256(sentences.path),
        "columns": list(sentences.columns),
        "sentences": len(sentences),
        "teacher": options.teacher,
        "weight": options.weight,
        "batch_size": min(options.batch_size, len(sentences)),
        "loss_per_epoch": [round(float(r[METRIC]), 6) for r in history if METRIC in r],
    }
