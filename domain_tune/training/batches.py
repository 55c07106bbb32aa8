"""The order of one epoch: which pairs (or parallel sentences) go together in each batch.

A pure function of ``(seed, epoch)``, so that a resumed run sees the batches
an uninterrupted one would have (:mod:`domain_tune.training.fit` for the
domain pairs, :mod:`domain_tune.training.distillation` for parallel sentences).
"""

import numpy as np


def epoch_order(n, seed, epoch):
    """The shuffle of one epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


BUCKET_WINDOW = 32  # batches sorted together when bucketing by length


def epoch_batches(lengths, batch_size, seed, epoch, bucket=True):
    """The batches (arrays of pair indices) of one epoch, a pure function of (seed, epoch).

    Without bucketing: consecutive slices of :func:`epoch_order`.  With it,
    each window of ``BUCKET_WINDOW`` batches of that order is sorted by pair
    length before it is cut, and the batches are then shuffled: texts of a
    batch have similar lengths (little padding, the encoder runs 3-4x faster)
    while every epoch still sees the pairs in a new random grouping.
    """
    lengths = np.asarray(lengths)
    order = epoch_order(len(lengths), seed, epoch)
    if not bucket:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * BUCKET_WINDOW
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle = np.random.default_rng([seed, epoch, 1]).permutation(len(batches))
    return [batches[i] for i in shuffle]
