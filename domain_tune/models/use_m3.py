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

USE_M3_CONFIG = {
    "vocabulary_size": 128000,
    "embedding_dim": 512,
    "ngram_orders": (2, 3, 5),
    "ngram_dim": 256,
    "dnn_dims": (320, 512),
    "layer_norm_epsilon": 1e-12,
}


# Masked slots between packed texts: the widest n-gram window (order 5) reaches 2 tokens a side.
PACK_GAP = 2


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
        Token features are pooled per text with a segment sum.  A padded
        batch of mixed lengths does work in proportion to ``batch x longest``;
        this does it in proportion to the tokens (plus ``gap`` per text).
        """
        if gap < max(self.ngram_orders) // 2:
            raise ValueError(f"gap must be at least {max(self.ngram_orders) // 2}")
        ids, mask = inputs["token_ids"], inputs["padding_mask"]
        n_texts = tf.shape(ids)[0]
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        packed = tf.concat(
            [tf.RaggedTensor.from_tensor(ids, lengths=lengths),
             tf.RaggedTensor.from_tensor(tf.fill([n_texts, gap], -1))], axis=1)
        flat = packed.flat_values
        segments = packed.value_rowids()
        flat_mask = flat >= 0
        flat_ids = tf.maximum(flat, 0)[tf.newaxis]
        row_mask = flat_mask[tf.newaxis]
        emb = self.token_embedding(flat_ids)
        x = self.ngram_norm(self.ngram_projection(emb))
        d = self.ngram_dim
        branches = [conv2(conv1(x[:, :, i * d : (i + 1) * d], row_mask), row_mask)
                    for i, (conv1, conv2) in enumerate(self.ngram_convs)]
        feats = self.feature_norm(ops.concatenate([emb] + branches, axis=-1))[0]
        feats = feats * tf.cast(flat_mask, feats.dtype)[:, tf.newaxis]
        n = tf.maximum(tf.cast(lengths, feats.dtype), 1.0)[:, tf.newaxis]
        summed = tf.math.segment_sum(feats, segments)  # segments are sorted
        kernel = ops.cast(self.pooling.kernel, feats.dtype)
        bias = ops.cast(self.pooling.bias, feats.dtype)
        pooled = ops.matmul(summed / tf.sqrt(n), kernel) + tf.sqrt(n) * bias
        return self._head(pooled)

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
