"""Pair losses for the siamese model: plain functions of targets and predictions.

* ``mse``: mean squared error between the angular similarity of each pair and
  its score (the article's loss).
* ``cosent``: CoSENT (Su 2022), a ranking loss over all pairs of pairs in the
  batch: ``log(1 + sum_{y_i > y_j} exp(scale * (s_j - s_i)))``, with ``s`` the
  predicted similarity.  It only asks that better-scored pairs be more
  similar, which keeps the embedding geometry of the pretrained model freer
  than matching absolute targets.

* ``in-batch``: in-batch negatives (multiple-negatives ranking): for every
  positive pair (score >= 0.99), its ``ref`` must be the most similar of all
  ``ref`` texts of the batch to its ``base`` (softmax cross-entropy over
  ``scale * cos``); other refs with the same text are not counted as
  negatives.  The strongest signal for retrieval; the related and unrelated
  pairs of a batch serve as extra negatives.
* ``in-batch-symmetric``: the mean of ``in-batch`` and the same ranking the
  other way round (each positive ``ref`` must find its ``base`` among all
  ``base`` texts of the batch; bases of the same ``ref``, synonyms of each
  other, are not counted as negatives).

Hard negatives (the optional ``negative`` column of a pairs file) join the
candidates of both in-batch losses in the ``base -> ref`` direction: every
positive's ``base`` must rank its ``ref`` above all refs *and* all hard
negatives of the batch.  An empty negative, or one equal to the anchor's own
``ref``, is left out.

The scale (an inverse temperature) of ``cosent`` and the in-batch losses is
``--scale`` (default 20, sentence-transformers' default): lower values give
softer rankings, where more than the hardest candidate pulls on the gradient.

Each takes ``(y_true, y_pred, base_emb, ref_emb, ref_texts, base_texts)``
(and, for the in-batch losses, ``negative_emb`` / ``negative_texts``) and
returns the mean over the (per-replica) batch; the caller divides by the
number of replicas for ``tf.distribute``.
"""

import tensorflow as tf
from keras import ops

from domain_tune.training import recipe

LOSSES = recipe.LOSSES
READS_NEGATIVES = ("in-batch", "in-batch-symmetric")  # the others ignore a 'negative' column
SCALED = ("cosent", "in-batch", "in-batch-symmetric")  # the losses that take a scale
COSENT_SCALE = 20.0
IN_BATCH_SCALE = 20.0
POSITIVE = 0.99


def mse(y_true, y_pred, *unused, **ignored):
    return ops.mean(ops.square(y_true - y_pred))


def _ranking_ce(anchor, candidates, same, scale):
    """Cross-entropy of each anchor's own candidate among all candidates of the batch.

    Anchor ``i``'s own candidate is column ``i``; ``candidates`` may have more
    rows than ``anchor`` (hard negatives after the batch's own).  ``same[i, j]``
    (j != i) marks candidates that are not negatives of anchor ``i`` (the same
    text, or a synonym); they are left out of its softmax.
    """
    a = tf.math.l2_normalize(tf.cast(anchor, tf.float32), axis=1)
    b = tf.math.l2_normalize(tf.cast(candidates, tf.float32), axis=1)
    logits = scale * tf.matmul(a, b, transpose_b=True)
    n, m = tf.shape(logits)[0], tf.shape(logits)[1]
    own = tf.eye(n, m, dtype=tf.bool)
    logits = tf.where(same & ~own, tf.cast(-1e9, logits.dtype), logits)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(n), logits=logits)


def _positive_mean(ce, y_true):
    positive = tf.cast(y_true >= POSITIVE, ce.dtype)
    return tf.reduce_sum(ce * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)


def in_batch(y_true, y_pred, base_emb, ref_emb, ref_texts, base_texts=None, scale=IN_BATCH_SCALE,
             negative_emb=None, negative_texts=None):
    same = tf.equal(ref_texts[:, None], ref_texts[None, :])
    candidates = ref_emb
    if negative_emb is not None:
        # a negative that is empty or the anchor's own ref is no negative
        not_negative = (tf.equal(negative_texts, "")[None, :]
                        | tf.equal(ref_texts[:, None], negative_texts[None, :]))
        same = tf.concat([same, not_negative], axis=1)
        candidates = tf.concat([ref_emb, negative_emb], axis=0)
    return _positive_mean(_ranking_ce(base_emb, candidates, same, scale), y_true)


def in_batch_symmetric(y_true, y_pred, base_emb, ref_emb, ref_texts, base_texts,
                       scale=IN_BATCH_SCALE, negative_emb=None, negative_texts=None):
    forward = in_batch(y_true, y_pred, base_emb, ref_emb, ref_texts, scale=scale,
                       negative_emb=negative_emb, negative_texts=negative_texts)
    # ref -> base: other bases of the same ref are its synonyms, not negatives
    same = (tf.equal(ref_texts[:, None], ref_texts[None, :])
            | tf.equal(base_texts[:, None], base_texts[None, :])
            | tf.equal(ref_texts[:, None], base_texts[None, :]))
    backward = _positive_mean(_ranking_ce(ref_emb, base_emb, same, scale), y_true)
    return (forward + backward) / 2.0


def cosent(y_true, y_pred, *unused, scale=COSENT_SCALE, **ignored):
    diff = scale * (y_pred[None, :] - y_pred[:, None])  # s_j - s_i at [i, j]
    worse = ops.cast(y_true[:, None] > y_true[None, :], diff.dtype)  # pairs with y_i > y_j
    diff = diff - (1.0 - worse) * 1e12
    zero = ops.zeros((1,), diff.dtype)
    return ops.logsumexp(ops.concatenate([zero, ops.reshape(diff, (-1,))]))


def get(name, scale=None):
    """The loss function ``name``; ``scale`` (None: the loss's default) for :data:`SCALED` ones."""
    import functools

    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}")
    fn = {"mse": mse, "cosent": cosent, "in-batch": in_batch,
          "in-batch-symmetric": in_batch_symmetric}[name]
    return functools.partial(fn, scale=float(scale)) if scale is not None and name in SCALED else fn
