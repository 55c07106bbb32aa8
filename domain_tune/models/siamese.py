"""The siamese pair model: one shared encoder, angular similarity of the pair.

``similarity = 1 - arccos(clip(cos(e_base, e_ref), -0.99999, 0.99999)) / pi``,
trained with MSE against scored pairs (``base, ref, similarity`` in [0, 1]).
Both texts of a batch go through the encoder in one call, so the shared
weights run once per step on ``2 x batch`` texts.
"""

import math

import keras
from keras import ops

CLIP = 0.99999


@keras.saving.register_keras_serializable(package="domain_tune")
class AngularSimilarity(keras.layers.Layer):
    """``1 - arccos(clip(cos(a, b))) / pi`` for each row pair of two batches."""

    def __init__(self, clip=CLIP, **kwargs):
        super().__init__(**kwargs)
        self.clip = clip

    def call(self, a, b):
        a = ops.cast(a, "float32")
        b = ops.cast(b, "float32")
        dot = ops.sum(a * b, axis=-1)
        norms = ops.sqrt(ops.sum(a * a, axis=-1) * ops.sum(b * b, axis=-1))
        cos = ops.clip(dot / ops.maximum(norms, 1e-12), -self.clip, self.clip)
        return 1.0 - ops.arccos(cos) / math.pi

    def compute_output_shape(self, a_shape, b_shape=None):
        return a_shape[:-1]

    def get_config(self):
        config = super().get_config()
        config.update({"clip": self.clip})
        return config


@keras.saving.register_keras_serializable(package="domain_tune")
class SiameseModel(keras.Model):
    """``{"base": strings, "ref": strings}`` -> angular similarity per pair."""

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.similarity = AngularSimilarity(name="angular_similarity")

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=False):
        base, ref = inputs["base"], inputs["ref"]
        n = ops.shape(base)[0]
        emb = self.encoder(ops.concatenate([base, ref], axis=0), training=training)
        return self.similarity(emb[:n], emb[n:])

    def get_config(self):
        config = super().get_config()
        config["encoder"] = keras.layers.serialize(self.encoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
