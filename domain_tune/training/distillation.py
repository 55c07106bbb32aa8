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
  the other languages.  Measured on ESCO with the embedding objective, it
  collapses the space at every weight tried (1, 5 and 10: STS-B dev Pearson
  0.28-0.32 against 0.83, the panel's means a third of the base's or less):
  nothing anchors a target that moves with the weights being trained
  (``results/multilingual.md``).

Two objectives (``--align-loss``):

* ``embedding`` (Reimers & Gurevych): the embeddings themselves are pulled to
  the teacher's, as above.
* ``similarity``: the *similarities* are pulled to the teacher's.  For a batch
  of ``n`` sources ``s`` and translations ``r`` and the teacher's similarity
  matrix ``T = t t^T`` of the sources, the student's cross-lingual, target
  and source similarity matrices are matched to it::

      align = mean((r s^T - T)^2) + mean((r r^T - T)^2) + mean((s s^T - T)^2)

  (each mean over the ``n x n`` entries).
* ``contrastive``: no teacher; translation ranking within the batch (the
  multiple-negatives ranking loss of LaBSE and sentence-transformers): each
  source must be closer to its own translation than to the batch's other
  translations, and the reverse (cross-entropy over ``SCALE x`` cosines).  Only the geometry that STS and
  retrieval read (which texts are close to which, across and within
  languages) is constrained, not where the space sits; pulling whole
  embeddings onto the English teacher's moves every language's space and
  costs monolingual STS (see ``results/multilingual.md``).

The parallel batches are a pure function of ``(seed, step)`` (see
:meth:`ParallelBatches.indices`), so a run resumed at epoch ``k`` sees the
batches an uninterrupted run would.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from domain_tune.errors import BadInputError, OptionError
from domain_tune.training import recipe
from domain_tune.training.batches import epoch_batches

TEACHERS = recipe.ALIGN_TEACHERS
LOSSES = recipe.ALIGN_LOSSES
SCALE = 20.0  # of the cosines in the contrastive objective (sentence-transformers' default)
DEFAULT_WEIGHT = recipe.default("align_weight")
DEFAULT_TEACHER = recipe.default("align_teacher")
DEFAULT_LOSS = recipe.default("align_loss")
DEFAULT_BATCH_SIZE = recipe.default("parallel_batch_size")
METRIC = "align_loss"  # the history column: the unweighted distillation term, mean over the epoch


@dataclasses.dataclass
class AlignOptions:
    """``train --parallel FILE [--parallel-columns S,T] [--align-weight W] [--align-teacher T]``."""

    parallel: str = None  # the parallel CSV
    columns: tuple = None  # (source, translation); None: the first two columns
    weight: float = DEFAULT_WEIGHT
    teacher: str = DEFAULT_TEACHER
    batch_size: int = DEFAULT_BATCH_SIZE  # parallel sentences per training step
    loss: str = DEFAULT_LOSS  # what is distilled: the embeddings or their similarities

    def validate(self):
        """Each option against its field of :mod:`~domain_tune.training.recipe` (the errors name
        the fields: ``align_weight``, ``parallel_batch_size``, ...)."""
        if not self.parallel:
            raise OptionError("alignment-preserving training needs {0} FILE", "parallel")
        recipe.check_group("align", self)
        if self.loss != "embedding" and self.batch_size < 2:
            raise OptionError("{0} " + self.loss + " compares sentences within a batch: {1} must "
                              "be at least 2", "align_loss", "parallel_batch_size")


def align_options(options):
    """The :class:`AlignOptions` of a ``train`` call's options (by their recipe names), None
    without ``parallel``; an alignment option given without ``parallel`` is refused."""
    fields = [f for f in recipe.FIELDS if f.target and f.target.startswith("align.")]
    parallel = options.get("parallel")
    if parallel is None:
        named = [f.name for f in fields if f.needs and options.get(f.name) is not None]
        if named:
            names = ", ".join("{%d}" % i for i in range(len(named)))
            raise OptionError(f"{names} {'needs' if len(named) == 1 else 'need'} "
                              "{%d} FILE" % len(named), *named, "parallel")
        return None
    values = {f.key: options[f.name] for f in fields
              if f.name != "parallel" and options.get(f.name) is not None}
    if "columns" in values:
        values["columns"] = tuple(values["columns"])
    align = AlignOptions(parallel=os.fspath(parallel), **values)
    align.validate()
    return align


# --- the loss ---------------------------------------------------------------------------


def distillation_loss(student_source, student_translation, teacher):
    """``mean_i (|s_i - t_i|^2 + |r_i - t_i|^2) / 2`` for student embeddings ``s`` (sources),
    ``r`` (translations) and teacher embeddings ``t`` of the sources (an empty batch: 0)."""
    teacher = tf.cast(teacher, tf.float32)
    dist = (tf.reduce_sum(tf.square(tf.cast(student_source, tf.float32) - teacher), axis=-1)
            + tf.reduce_sum(tf.square(tf.cast(student_translation, tf.float32) - teacher), axis=-1))
    n = tf.cast(tf.shape(dist)[0], tf.float32)
    return tf.reduce_sum(dist) / (2.0 * tf.maximum(n, 1.0))


def similarity_distillation_loss(student_source, student_translation, teacher):
    """``mean((r s^T - T)^2) + mean((r r^T - T)^2) + mean((s s^T - T)^2)`` with ``T = t t^T``
    for student embeddings ``s`` (sources), ``r`` (translations) and teacher embeddings ``t``
    of the sources (dot products: cosines for the encoder's unit vectors)."""
    s = tf.cast(student_source, tf.float32)
    r = tf.cast(student_translation, tf.float32)
    t = tf.cast(teacher, tf.float32)
    target = tf.matmul(t, t, transpose_b=True)

    def term(a, b):
        return tf.reduce_mean(tf.square(tf.matmul(a, b, transpose_b=True) - target))

    if s.shape[0] == 0:
        return tf.constant(0.0)
    return term(r, s) + term(r, r) + term(s, s)


def contrastive_alignment_loss(student_source, student_translation, scale=SCALE):
    """Symmetric in-batch translation ranking: the mean of the cross-entropies of finding
    each source's translation among the batch's translations and each translation's source
    among the sources, over ``scale x`` cosines."""
    s = tf.math.l2_normalize(tf.cast(student_source, tf.float32), axis=-1)
    r = tf.math.l2_normalize(tf.cast(student_translation, tf.float32), axis=-1)
    logits = scale * tf.matmul(s, r, transpose_b=True)
    labels = tf.range(tf.shape(logits)[0])
    forward = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    backward = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.transpose(logits))
    n = tf.cast(tf.shape(logits)[0], tf.float32)
    return (tf.reduce_sum(forward) + tf.reduce_sum(backward)) / (2.0 * tf.maximum(n, 1.0))


def alignment_loss(encoder, parallel, training=True, loss=DEFAULT_LOSS):
    """The distillation term of one batch ``{"source", "translation"[, "teacher"]}``.

    Sources and translations go through ``encoder`` in one call.  Without a
    ``"teacher"`` tensor (``--align-teacher self``) the teacher is the
    encoder's own embedding of the source, with the gradient stopped.
    ``loss``: ``embedding``, ``similarity`` or ``contrastive`` (see the module's docstring).
    """
    source, translation = parallel["source"], parallel["translation"]
    n = tf.shape(source)[0]
    out = encoder(tf.concat([source, translation], axis=0), training=training)
    student_source, student_translation = out[:n], out[n:]
    if loss == "contrastive":
        return contrastive_alignment_loss(student_source, student_translation)
    teacher = parallel.get("teacher")
    if teacher is None:
        teacher = tf.stop_gradient(student_source)
    if loss == "similarity":
        return similarity_distillation_loss(student_source, student_translation, teacher)
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
    :func:`domain_tune.training.batches.epoch_batches`), cut into full batches
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
        return rows.map(gather)

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
    if options.teacher == "base" and options.loss != "contrastive":
        teacher = teacher_embeddings(base, sentences.source, progress=echo is not None)
        if echo is not None:
            echo(f"alignment: {len(sentences):,} parallel sentences, teacher 'base' "
                 f"({len(teacher[1]):,} distinct sources embedded once)")
    elif echo is not None:
        echo(f"alignment: {len(sentences):,} parallel sentences, "
             + ("no teacher" if options.loss == "contrastive" else "teacher 'self'"))
    if echo is not None:
        echo(f"alignment: objective '{options.loss}', weight {options.weight:g}, "
             f"{min(options.batch_size, len(sentences))} parallel sentences per step")
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
        "loss": options.loss,
        "weight": options.weight,
        "batch_size": min(options.batch_size, len(sentences)),
        "loss_per_epoch": [round(float(r[METRIC]), 6) for r in history if METRIC in r],
    }
