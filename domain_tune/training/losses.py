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

Each takes ``(y_true, y_pred, base_emb, ref_emb, ref_texts)`` and returns the
mean over the (per-replica) batch; the caller divides by the number of
replicas for ``tf.distribute``.
"""

import tensorflow as tf
from keras import ops

LOSSES = ("mse", "cosent", "in-batch")
COSENT_SCALE = 20.0
IN_BATCH_SCALE = 20.0
POSITIVE = 0.99


def mse(y_true, y_pred, *unused):
    return ops.mean(ops.square(y_true - y_pred))


def in_batch(y_true, y_pred, base_emb, ref_emb, ref_texts, scale=IN_BATCH_SCALE):
    a = tf.math.l2_normalize(tf.cast(base_emb, tf.float32), axis=1)
    b = tf.math.l2_normalize(tf.cast(ref_emb, tf.float32), axis=1)
    logits = scale * tf.matmul(a, b, transpose_b=True)
    n = tf.shape(logits)[0]
    duplicate = tf.equal(ref_texts[:, None], ref_texts[None, :]) & ~tf.eye(n, dtype=tf.bool)
    logits = tf.where(duplicate, tf.cast(-1e9, logits.dtype), logits)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(n), logits=logits)
    positive = tf.cast(y_true >= POSITIVE, ce.dtype)
    return tf.reduce_sum(ce * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)


def cosent(y_true, y_pred, *unused, scale=COSENT_SCALE):
    diff = scale * (y_pred[None, :] - y_pred[:, None])  # s_j - s_i at [i, j]
    worse = ops.cast(y_true[:, None] > y_true[None, :], diff.dtype)  # pairs with y_i > y_j
    diff = diff - (1.0 - worse) * 1e12
    zero = ops.zeros((1,), diff.dtype)
    return ops.logsumexp(ops.concatenate([zero, ops.reshape(diff, (-1,))]))


def get(name):
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}")
    return {"mse": mse, "cosent": cosent, "in-batch": in_batch}[name]
