"""Strings in, embeddings out: tokenizer and backbone in one Keras model."""

import contextlib
import contextvars
from unittest import mock

import keras
import tensorflow as tf

from domain_tune.models.tokenizer import SentencePieceTokenizer
from domain_tune.models.use_m3 import UniversalSentenceEncoderBackbone


@keras.saving.register_keras_serializable(package="domain_tune")
class SentenceEncoder(keras.Model):
    """A sentence encoder whose input is a batch of raw strings.

    Tokenization runs in the graph, so the model (and its SavedModel export)
    maps ``tf.string`` of shape ``(batch,)`` to float32 ``(batch, dim)``
    unit vectors.
    """

    def __init__(self, tokenizer, backbone, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.backbone = backbone
        # run-time choice, not config: the padding-free forward pass of the
        # backbone (same outputs) for inference; see use_packed_forward
        self.packed = hasattr(backbone, "call_packed")
        # Both parts are complete (the backbone is a functional model, the tokenizer has no
        # weights): built, so that Keras' summary() and export() take the model as it is.
        self.tokenizer.built = True
        self.built = True

    @property
    def output_dim(self):
        return self.backbone.output_dim

    def build(self, input_shape=None):
        self.built = True

    def call(self, texts, training=False, packed=None):
        """Embeddings of ``texts``; ``packed`` chooses the backbone's pass.

        ``None`` (the default) runs packed for inference and padded for
        training.  ``packed=True`` in training is for optimizers that sum an
        embedding table's gradient slices before using them (``lazy-adam``):
        the packed pass reads each distinct token's row once, so the table's
        gradient holds one slice per distinct token instead of one per place
        (the same dense gradient; Keras' Adam, which squares each slice,
        would change).  Ignored where the packed pass is switched off
        (:func:`use_packed_forward`).
        """
        tokens = self.tokenizer(texts)
        if packed is None:
            packed = not training
        if self.packed and packed:
            return self.backbone.call_packed(tokens)
        return self.backbone(tokens, training=training)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):
        """Keras' ``model.export``, with a batch of strings as the default input signature
        (Keras cannot infer it for a subclassed model): the endpoint ``serve`` maps ``(batch,)``
        strings to ``(batch, dim)`` embeddings."""
        if input_signature is None and format == "tf_saved_model":
            input_signature = [string_signature()]
        return super().export(filepath, format=format, verbose=verbose,
                              input_signature=input_signature, **kwargs)

    def compute_output_spec(self, texts, training=False):
        return keras.KerasTensor((texts.shape[0], self.output_dim), dtype="float32")

    @property
    def _default_save_signature(self):
        # Keras would derive a float32 signature from the build shape; the
        # input of this model is a batch of strings.  It calls the model's
        # inference function, traced once per model.  None where another
        # root serves the model (see no_default_signature).
        if not _DEFAULT_SIGNATURE.get():
            return None
        from domain_tune.embedding import inference_fn

        @tf.function(input_signature=[string_signature()], autograph=False)
        def serving_default(inputs):
            return inference_fn(self)(inputs)

        return serving_default

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tokenizer": keras.layers.serialize(self.tokenizer),
                "backbone": keras.layers.serialize(self.backbone),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.layers.deserialize(config["tokenizer"])
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


_DEFAULT_SIGNATURE = contextvars.ContextVar("domain_tune_default_signature", default=True)


@contextlib.contextmanager
def no_default_signature():
    """Keras models have no ``_default_save_signature`` in this block: for a SavedModel whose
    root is another object that serves the encoder itself.

    ``tf.saved_model.save`` reads that attribute on every object it saves, not only on the
    root, and traces what it returns: for the encoder's functional backbone, Keras' signature
    (the padded forward pass, 0.35 s to trace) was saved as an unused function of every
    run's SavedModel.
    """
    from keras.src.backend.tensorflow.layer import TFLayer

    token = _DEFAULT_SIGNATURE.set(False)
    try:
        with mock.patch.object(TFLayer, "_default_save_signature", None):
            yield
    finally:
        _DEFAULT_SIGNATURE.reset(token)


def use_packed_forward(model, packed=True):
    """Run the sentence encoders of ``model`` padded (``False``) or packed (``True``).

    Packed (the default) applies to inference (embedding, evaluation and
    validation) and to training steps whose optimizer sums a table's gradient
    slices (``lazy-adam``, see :meth:`SentenceEncoder.call`): there the packed
    step, which computes each distinct token's projection once, measured
    62 -> 50 ms per batch-64 step natively and 83 -> 56 ms with oneDNN capped
    to AVX2 (ESCO sample, ``python -m scripts.bench_speed.step lazy-adam 64
    15``).  Training with Keras' Adam runs padded: one gradient slice per
    token place keeps its numbers, and the packed step measured no faster
    there (batch 8: 24 vs 26 ms).  Takes effect for functions traced
    afterwards.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, SentenceEncoder):
            layer.packed = bool(packed) and hasattr(layer.backbone, "call_packed")


def string_signature():
    return tf.TensorSpec(shape=[None], dtype=tf.string, name="inputs")


__all__ = ["SentenceEncoder", "SentencePieceTokenizer", "UniversalSentenceEncoderBackbone"]
