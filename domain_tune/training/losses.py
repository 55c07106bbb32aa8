"""Pair losses for the siamese model: plain functions of targets and predictions.

* ``mse``: mean squared error between the angular similarity of each pair and
  its score (the article's loss).
* ``cosent``: CoSENT (Su 2022), a ranking loss over all pairs of pairs in the
  batch: ``log(1 + sum_{y_i > y_j} exp(scale * (s_j - s_i)))``, with ``s`` the
  predicted similarity.  It only asks that better-scored pairs be more
  similar, which keeps the embedding geometry of the pretrained model freer
  than matching absolute targets.

Each returns the mean over the (per-replica) batch; the caller divides by the
number of replicas for ``tf.distribute``.
"""

from keras import ops

LOSSES = ("mse", "cosent")
COSENT_SCALE = 20.0


def mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred))


def cosent(y_true, y_pred, scale=COSENT_SCALE):
    diff = scale * (y_pred[None, :] - y_pred[:, None])  # s_j - s_i at [i, j]
    worse = ops.cast(y_true[:, None] > y_true[None, :], diff.dtype)  # pairs with y_i > y_j
    diff = diff - (1.0 - worse) * 1e12
    zero = ops.zeros((1,), diff.dtype)
    return ops.logsumexp(ops.concatenate([zero, ops.reshape(diff, (-1,))]))


def get(name):
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}")
    return {"mse": mse, "cosent": cosent}[name]
