"""Cached-gradient training step for the in-batch losses (GradCache, Gao et al. 2021).

An in-batch loss couples every text of a batch with every other, so a large
batch cannot simply be split into accumulated mini-batches.  GradCache splits
the *encoder* instead, as sentence-transformers'
``CachedMultipleNegativesRankingLoss`` does:

1. embed all texts of the batch (``base``, ``ref`` and the hard negatives, one
   concatenated list) in mini-batches of ``mini_batch_size`` texts, without
   recording gradients;
2. compute the loss on those embeddings and its gradient with respect to each
   embedding (cheap: a ``texts x 512`` matrix);
3. embed each mini-batch again, this time under a gradient tape, and
   back-propagate the cached embedding gradient through it
   (``d/dw sum(emb * cached_grad)``), accumulating the weight gradients.

The result equals one encoder call on the whole batch (same loss, same
gradients up to float rounding) while the activations held at any time are
those of one mini-batch.  The cost is a second forward pass of the encoder
(about 1.3-1.5x a plain step).  The encoder has no dropout, so the two passes
produce the same embeddings without replaying a random state.

With ``lazy-adam`` the encoder calls run its packed pass, as the plain step's
do (``SiameseModel.encoder_call_options``).

Sparse gradients (the embedding table's ``tf.IndexedSlices``) are accumulated
by concatenating their rows, so a lazy optimizer still updates only the rows
of the batch.  Under ``tf.distribute`` each replica runs this on its share of
the global batch, exactly as the plain step does.
"""

import tensorflow as tf


def _chunks(total, size):
    return (total + size - 1) // size


def embed_without_gradients(encoder, texts, mini_batch_size, call_options=None):
    """``encoder(texts)`` computed ``mini_batch_size`` texts at a time, outside any tape.

    ``call_options``: keyword arguments of every encoder call (e.g. ``packed``).
    """
    call_options = call_options or {}
    total = tf.shape(texts)[0]
    n = _chunks(total, mini_batch_size)
    out = tf.TensorArray(tf.float32, size=n, infer_shape=False,
                         element_shape=tf.TensorShape([None, None]))

    def body(i, out):
        part = texts[i * mini_batch_size : (i + 1) * mini_batch_size]
        emb = tf.stop_gradient(tf.cast(encoder(part, training=True, **call_options), tf.float32))
        return i + 1, out.write(i, emb)

    _, out = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), out))
    return out.concat()


def _flatten(grad):
    """A gradient as a list of tensors: ``[dense]`` or ``[values, indices]``."""
    if isinstance(grad, tf.IndexedSlices):
        return [grad.values, tf.cast(grad.indices, tf.int64)]
    return [grad]


def backpropagate_cached(encoder, texts, emb_grad, variables, mini_batch_size, call_options=None):
    """Weight gradients of ``sum(encoder(texts) * emb_grad)``, one mini-batch at a time.

    Returns one gradient per variable (``None`` where the encoder does not
    reach it); sparse gradients come back as ``tf.IndexedSlices`` holding the
    rows of every mini-batch.  ``call_options`` as for :func:`embed_without_gradients`.
    """
    call_options = call_options or {}
    total = tf.shape(texts)[0]
    n = _chunks(total, mini_batch_size)

    def grads_of(i):
        start = i * mini_batch_size
        part = texts[start : start + mini_batch_size]
        with tf.GradientTape() as tape:
            emb = tf.cast(encoder(part, training=True, **call_options), tf.float32)
            surrogate = tf.reduce_sum(emb * emb_grad[start : start + mini_batch_size])
        return tape.gradient(surrogate, variables)

    # the first mini-batch fixes the structure (dense, sparse or none) of every gradient
    first = grads_of(tf.constant(0))
    kinds = [None if g is None else ("sparse" if isinstance(g, tf.IndexedSlices) else "dense")
             for g in first]
    acc = [t for g in first if g is not None for t in _flatten(g)]
    invariants = []
    for g in first:
        if g is None:
            continue
        if isinstance(g, tf.IndexedSlices):
            invariants += [tf.TensorShape([None]).concatenate(g.values.shape[1:]),
                           tf.TensorShape([None])]
        else:
            invariants.append(g.shape)

    def body(i, *acc):
        new = grads_of(i)
        merged, k = [], 0
        for g, kind in zip(new, kinds):
            if kind is None:
                continue
            if kind == "sparse":
                merged += [tf.concat([acc[k], g.values], 0),
                           tf.concat([acc[k + 1], tf.cast(g.indices, tf.int64)], 0)]
                k += 2
            else:
                merged.append(acc[k] + g)
                k += 1
        return (i + 1, *merged)

    result = tf.while_loop(
        lambda i, *_: i < n, body, (tf.constant(1), *acc),
        shape_invariants=(tf.TensorShape([]), *invariants),
    )[1:]
    grads, k = [], 0
    for g, kind in zip(first, kinds):
        if kind is None:
            grads.append(None)
        elif kind == "sparse":
            grads.append(tf.IndexedSlices(result[k], result[k + 1], g.dense_shape))
            k += 2
        else:
            grads.append(result[k])
            k += 1
    return grads


def cached_train_step(model, x, y, mini_batch_size):
    """One GradCache step of a :class:`~domain_tune.training.siamese.SiameseModel`.

    Returns ``(loss, similarity, grads)`` for the model's trainable weights;
    the caller updates the optimizer and the metrics.
    """
    names = model.text_inputs(x)
    n = tf.shape(x["base"])[0]
    texts = tf.concat([x[k] for k in names], axis=0)
    options = model.encoder_call_options(model.distinct_texts)  # the packed pass for lazy-adam
    flat = embed_without_gradients(model.encoder, texts, mini_batch_size, options)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        emb = {k: flat[i * n : (i + 1) * n] for i, k in enumerate(names)}
        similarity = model.similarity(emb["base"], emb["ref"])
        loss = model.pair_loss_value(x, y, similarity, emb)
        scaled = model.optimizer.scale_loss(loss)
    emb_grad = tape.gradient(scaled, flat)
    grads = backpropagate_cached(model.encoder, texts, emb_grad, model.trainable_weights,
                                 mini_batch_size, options)
    return loss, similarity, grads
