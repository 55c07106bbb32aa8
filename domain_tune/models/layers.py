"""Building blocks of the USE-multilingual encoder that Keras does not ship.

* :class:`MaskedNGramConv`: one n-gram convolution with ReLU and a residual
  connection, zeroing padded positions first so that a window never reads a
  neighbouring text or padding (the per-text zero padding of the reference).
* :class:`SqrtNPooling`: project token features and pool them with the
  "sqrt-n" combiner, ``(sum_t (x_t W + b)) / sqrt(n)``, computed as
  ``(sum_t x_t) W / sqrt(n) + sqrt(n) b`` so the projection runs once per text
  instead of once per token.
"""

import keras
from keras import ops


def _mask(x, padding_mask):
    return x * ops.cast(padding_mask, x.dtype)[..., None]


@keras.saving.register_keras_serializable(package="domain_tune")
class MaskedNGramConv(keras.layers.Layer):
    """``relu(conv_n(x * mask) + b) + x`` over a padded batch of tokens.

    The window of token ``t`` spans ``t - (n-1)//2 ... t + n//2`` (Keras
    ``padding="same"``), which is the context of the reference n-gram branches
    (bigram: t..t+1, trigram: t-1..t+1, 5-gram: t-2..t+2).
    """

    def __init__(self, order, units, **kwargs):
        super().__init__(**kwargs)
        self.order = order
        self.units = units
        self.conv = keras.layers.Conv1D(
            units, order, padding="same", activation="relu", dtype=self.dtype_policy, name="conv"
        )

    def build(self, x_shape):
        self.conv.build(x_shape)
        self.built = True

    def call(self, x, padding_mask):
        return self.conv(_mask(x, padding_mask)) + x

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"order": self.order, "units": self.units})
        return config


@keras.saving.register_keras_serializable(package="domain_tune")
class SqrtNPooling(keras.layers.Layer):
    """Masked sum of projected token features divided by ``sqrt(n)``."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, x_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(x_shape[-1], self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.built = True

    def call(self, x, padding_mask):
        n = ops.sum(ops.cast(padding_mask, x.dtype), axis=1, keepdims=True)
        n = ops.maximum(n, 1.0)
        pooled = ops.sum(_mask(x, padding_mask), axis=1) / ops.sqrt(n)
        return ops.matmul(pooled, ops.cast(self.kernel, x.dtype)) + ops.sqrt(n) * ops.cast(
            self.bias, x.dtype
        )

    def compute_output_shape(self, x_shape):
        return (x_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@keras.saving.register_keras_serializable(package="domain_tune")
class L2Normalize(keras.layers.Layer):
    """``x / sqrt(max(sum(x^2), epsilon))`` along the last axis."""

    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        x = ops.cast(x, "float32")
        sq = ops.sum(ops.square(x), axis=-1, keepdims=True)
        return x * ops.rsqrt(ops.maximum(sq, self.epsilon))

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config
