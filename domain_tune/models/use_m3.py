"""The multilingual Universal Sentence Encoder v3 as a functional Keras model.

Architecture (token ids in, one L2-normalised vector per text out):

1. token embedding (``vocabulary_size x embedding_dim``);
2. one dense projection to ``len(ngram_orders) * ngram_dim`` features,
   layer-normalised over all of them; each ``ngram_dim`` slice feeds one n-gram
   branch (orders 2, 3 and 5) of two residual masked convolutions;
3. ``[embedding | branch outputs]`` layer-normalised, projected and pooled
   with the sqrt-n combiner;
4. a small deep network with two skip projections and a ``tanh`` output, then
   L2 normalisation.

With the default configuration and the weights of :mod:`domain_tune.models.weights`
this reproduces the reference forward pass of USE-multilingual v3.
"""

import keras
import tensorflow as tf
from keras import ops

from domain_tune.models import layers as dt_layers
from domain_tune.models.layers import L2Normalize, MaskedNGramConv, SqrtNPooling
from domain_tune.models.presets import USE_M3_CONFIG

# Masked slots between packed texts: the widest n-gram window (order 5) reaches 2 tokens a side.
PACK_GAP = 2


def pack_tokens(ids, mask, gap):
    """The tokens of a padded batch laid end to end, ``gap`` slots of ``-1`` after each text.

    ``ids`` and ``mask`` are ``(batch, length)``, each row's tokens first (as the
    tokenizer returns them).  Returns ``(flat, segments, lengths)``: the packed ids
    (``-1`` in the gaps), the text of each slot (sorted, as segment sums want) and
    each text's token count.  A handful of graph ops (one ``Where`` and one
    ``GatherNd``), where a ragged round trip traced about 200.
    """
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    width = tf.shape(ids)[1] + gap
    extended = tf.pad(tf.where(mask, ids, -1), [[0, 0], [0, gap]], constant_values=-1)
    slots = tf.where(tf.sequence_mask(lengths + gap, width))  # (slots, 2): text, position
    return tf.gather_nd(extended, slots), tf.unstack(slots, num=2, axis=1)[0], lengths


def _dense(units, name, activation=None, use_bias=False, dtype=None):
    return keras.layers.Dense(units, activation=activation, use_bias=use_bias, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="domain_tune")
class UniversalSentenceEncoderBackbone(keras.Model):
    """Token ids and padding mask in, ``dnn_dims[-1]``-d unit vectors out.

    Args:
        vocabulary_size: rows of the embedding table (pretrained plus any
            domain rows).
        embedding_dim, ngram_orders, ngram_dim, dnn_dims, layer_norm_epsilon:
            the architecture; :data:`USE_M3_CONFIG` holds the real model's.
        embedding: ``None`` for a plain trainable
            :class:`domain_tune.models.layers.Embedding`, or
            the serialised config of another embedding layer (for instance a
            :class:`~domain_tune.models.semi_frozen.SemiFrozenEmbedding`).
    """

    def __init__(
        self,
        vocabulary_size=USE_M3_CONFIG["vocabulary_size"],
        embedding_dim=USE_M3_CONFIG["embedding_dim"],
        ngram_orders=USE_M3_CONFIG["ngram_orders"],
        ngram_dim=USE_M3_CONFIG["ngram_dim"],
        dnn_dims=USE_M3_CONFIG["dnn_dims"],
        layer_norm_epsilon=USE_M3_CONFIG["layer_norm_epsilon"],
        embedding=None,
        dtype=None,
        **kwargs,
    ):
        ngram_orders = tuple(int(n) for n in ngram_orders)
        dnn_dims = tuple(int(d) for d in dnn_dims)
        hidden, out_dim = dnn_dims

        # === Layers ===
        if embedding is None:
            self.token_embedding = dt_layers.Embedding(
                vocabulary_size, embedding_dim, name="token_embedding", dtype=dtype
            )
        else:
            layer = keras.layers.deserialize(embedding)
            if type(layer) is keras.layers.Embedding:
                # saved by an earlier version: same weights, sparse reads
                layer = dt_layers.Embedding.from_config(layer.get_config())
            self.token_embedding = layer
        self.ngram_projection = _dense(
            len(ngram_orders) * ngram_dim, "ngram_projection", use_bias=True, dtype=dtype
        )
        self.ngram_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="ngram_norm", dtype=dtype
        )
        self.ngram_convs = [
            [
                MaskedNGramConv(n, ngram_dim, name=f"ngram{n}_conv{k}", dtype=dtype)
                for k in (1, 2)
            ]
            for n in ngram_orders
        ]
        self.feature_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="feature_norm", dtype=dtype
        )
        self.pooling = SqrtNPooling(embedding_dim, name="pooling", dtype=dtype)
        self.dnn_0 = _dense(hidden, "dnn_0", "relu", dtype=dtype)
        self.dnn_skip_1 = _dense(hidden, "dnn_skip_1", dtype=dtype)
        self.dnn_1 = _dense(hidden, "dnn_1", dtype=dtype)
        self.dnn_2 = _dense(out_dim, "dnn_2", "relu", dtype=dtype)
        self.dnn_skip_3 = _dense(out_dim, "dnn_skip_3", dtype=dtype)
        self.dnn_3 = _dense(out_dim, "dnn_3", dtype=dtype)
        self.normalize = L2Normalize(layer_norm_epsilon, name="l2_normalize", dtype="float32")

        # === Functional model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        emb = self.token_embedding(token_ids)
        x = self.ngram_norm(self.ngram_projection(emb))
        branches = []
        for i, (conv1, conv2) in enumerate(self.ngram_convs):
            xs = x[:, :, i * ngram_dim : (i + 1) * ngram_dim]
            branches.append(conv2(conv1(xs, padding_mask), padding_mask))
        feats = self.feature_norm(ops.concatenate([emb] + branches, axis=-1))
        pooled = self.pooling(feats, padding_mask)
        y0 = self.dnn_0(pooled)
        y1 = ops.relu(self.dnn_skip_1(pooled) + self.dnn_1(y0))
        y2 = self.dnn_2(y1)
        z = ops.tanh(self.dnn_skip_3(y1) + self.dnn_3(y2))
        outputs = self.normalize(z)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=outputs,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.ngram_orders = ngram_orders
        self.ngram_dim = ngram_dim
        self.dnn_dims = dnn_dims
        self.layer_norm_epsilon = layer_norm_epsilon
        self.embedding = embedding

    @property
    def output_dim(self):
        return self.dnn_dims[-1]

    def call_packed(self, inputs, gap=PACK_GAP):
        """The same outputs as ``self(inputs)``, computed without the padding.

        The tokens of every text are laid end to end in one row, ``gap``
        masked slots after each text: a window of the widest n-gram branch
        reaches ``max(orders) // 2`` tokens to a side, and every convolution
        zeroes masked positions first, so no window reads a neighbouring text.
        A padded batch of mixed lengths does work in proportion to
        ``batch x longest``; this does it in proportion to the tokens (plus
        ``gap`` per text), and less:

        * what depends on a token's id alone (its embedding, projection and
          layer norm, and the first convolution's products with every tap of
          its kernel) is computed once per distinct token of the batch and
          gathered (on STS-B at batch 256 a third of the tokens are distinct);
        * the feature norm is folded into the pooling: the normalised token
          features are only ever summed per text, so each text's sum is taken
          from the per-token scale ``1 / std`` and mean without writing the
          normalised features (see :meth:`_pooled_feature_norm`).

        Together 1.5x the throughput of the plain packed pass on STS-B (both
        instruction-set settings, ``scripts/bench_speed``); the outputs equal
        the padded pass to float rounding (tested to 1e-6).
        """
        if gap < max(self.ngram_orders) // 2:
            raise ValueError(f"gap must be at least {max(self.ngram_orders) // 2}")
        flat, segments, lengths = pack_tokens(inputs["token_ids"], inputs["padding_mask"], gap)
        flat_mask = flat >= 0
        distinct, position = tf.unique(tf.maximum(flat, 0))
        # masked slots read an extra row of zeros from the tap products
        position_masked = tf.where(flat_mask, position, tf.size(distinct))
        emb_d = self.token_embedding(distinct)
        x_d = self.ngram_norm(self.ngram_projection(emb_d))
        d = self.ngram_dim
        branches = []
        for (conv1, conv2), xs_d in zip(self.ngram_convs, tf.split(x_d, len(self.ngram_convs), 1)):
            # tap products of the distinct tokens and of a zero row (read at masked slots)
            products = conv1.tap_products(tf.concat([xs_d, tf.zeros([1, d], xs_d.dtype)], axis=0))
            h = conv1.call_on_tap_products(products, position_masked, tf.gather(xs_d, position))
            branches.append(conv2.call_sequence(h, flat_mask))
        pieces = [tf.gather(emb_d, position)] + branches
        summed = self._pooled_feature_norm(pieces, flat_mask, segments, lengths)
        n = tf.expand_dims(tf.maximum(tf.cast(lengths, summed.dtype), 1.0), 1)
        kernel = ops.cast(self.pooling.kernel, summed.dtype)
        bias = ops.cast(self.pooling.bias, summed.dtype)
        pooled = ops.matmul(summed / tf.sqrt(n), kernel) + tf.sqrt(n) * bias
        return self._head(pooled)

    def _pooled_feature_norm(self, pieces, mask, segments, lengths):
        """Per text, the sum over its tokens of ``feature_norm(concat(pieces))``.

        With ``r`` the inverse standard deviation and ``mu`` the mean of a
        token's features, the norm is ``gamma * (x - mu) * r + beta``; summed
        over a text's tokens that is ``gamma * (sum(r x) - sum(r mu)) + n *
        beta``: two weighted segment sums, no normalised copy of the features
        (the concatenation is never written either; the statistics are summed
        piece by piece, with the same two-pass variance as the layer).  In
        float32 whatever the compute dtype, as the layer computes.
        """
        norm = self.feature_norm
        pieces = [tf.cast(p, tf.float32) for p in pieces]
        width = float(sum(int(p.shape[-1]) for p in pieces))
        mean = tf.add_n([tf.reduce_sum(p, axis=-1) for p in pieces]) / width
        variance = tf.add_n([tf.reduce_sum(tf.math.squared_difference(p, tf.expand_dims(mean, 1)), axis=-1)
                             for p in pieces]) / width
        scale = tf.math.rsqrt(variance + norm.epsilon) * tf.cast(mask, variance.dtype)
        summed = tf.concat([tf.math.segment_sum(p * tf.expand_dims(scale, 1), segments) for p in pieces],
                           axis=-1)
        summed = summed - tf.expand_dims(tf.math.segment_sum(scale * mean, segments), 1)
        if norm.scale:
            summed = summed * ops.cast(norm.gamma, summed.dtype)
        if norm.center:
            n = tf.expand_dims(tf.cast(lengths, summed.dtype), 1)
            summed = summed + n * ops.cast(norm.beta, summed.dtype)
        return summed

    def _head(self, pooled):
        y0 = self.dnn_0(pooled)
        y1 = ops.relu(self.dnn_skip_1(pooled) + self.dnn_1(y0))
        y2 = self.dnn_2(y1)
        z = ops.tanh(self.dnn_skip_3(y1) + self.dnn_3(y2))
        return self.normalize(z)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "ngram_orders": list(self.ngram_orders),
            "ngram_dim": self.ngram_dim,
            "dnn_dims": list(self.dnn_dims),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "embedding": self.embedding,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
