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


def _replicas():
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _per_step_logs(logs):
    """Per-step logs that Keras can reduce across workers.

    Keras averages each step's logs across a MultiWorkerMirroredStrategy with
    ``reduce("MEAN", axis=0)``, which fails on scalars; a length-1 vector
    reduces fine.  Epoch logs are read from the metrics' own (cross-worker)
    state, so they stay scalars either way.
    """
    import tensorflow as tf

    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {k: ops.reshape(v, (1,)) for k, v in logs.items()}
    return logs


@keras.saving.register_keras_serializable(package="domain_tune")
class SiameseModel(keras.Model):
    """``{"base": strings, "ref": strings}`` -> angular similarity per pair.

    An optional ``"negative"`` input (hard negatives, ``""`` for none) goes
    through the same encoder call and into the in-batch losses.  An optional
    ``"parallel"`` input (a batch of parallel sentences, see
    :mod:`domain_tune.training.distillation`) adds ``align_weight`` times the
    distillation term to the training loss, tracked as ``align_loss``.
    """

    def __init__(self, encoder, loss="mse", align_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.pair_loss = loss
        self.similarity = AngularSimilarity(name="angular_similarity")
        self.align_weight = float(align_weight)
        if self.align_weight:
            self.align_tracker = keras.metrics.Mean(name="align_loss")

    def build(self, input_shape=None):
        self.built = True

    def build_compiled(self):
        """Create loss, metric and optimizer state from a one-pair string batch.

        Under a ``tf.distribute`` strategy Keras builds a compiled model from
        a batch averaged across replicas, which cannot work for string inputs;
        building here first (inside the strategy scope) makes that step a no-op.
        """
        import tensorflow as tf

        batch = ({"base": tf.constant(["a"]), "ref": tf.constant(["b"])}, tf.constant([0.5]))
        self._symbolic_build(data_batch=batch)
        self._state_built = True

    def pair_loss_value(self, x, y, similarity, emb):
        """The pair loss, divided by the replicas in sync (their gradients are summed).

        Computed here rather than by ``compile(loss=...)``: Keras 3's compiled
        loss is reported and differentiated at ``replicas x`` its value under
        ``tf.distribute.MirroredStrategy`` (keras-team/keras#19891), and the
        in-batch loss needs the embeddings, not only the similarities.
        """
        from domain_tune.training import losses

        negatives = {}
        if "negative" in emb:
            negatives = {"negative_emb": emb["negative"], "negative_texts": x["negative"]}
        value = losses.get(self.pair_loss)(
            ops.cast(y, "float32"), ops.cast(similarity, "float32"), emb["base"], emb["ref"],
            x["ref"], x["base"], **negatives,
        )
        return value / _replicas()

    def train_step(self, data):
        import tensorflow as tf

        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            similarity, emb = self._forward(x, training=True)
            loss = self.pair_loss_value(x, y, similarity, emb)
            scaled = self.optimizer.scale_loss(loss + self.alignment_value(x))
        self._loss_tracker.update_state(loss * _replicas(), sample_weight=tf.shape(similarity)[0])
        grads = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return _per_step_logs(self.compute_metrics(x, y, similarity))

    def alignment_value(self, x):
        """``align_weight`` x the distillation term of ``x["parallel"]`` (0 without), per replica."""
        if "parallel" not in x:
            return 0.0
        from domain_tune.training.distillation import alignment_loss

        value = alignment_loss(self.encoder, x["parallel"], training=True)
        self.align_tracker.update_state(value, sample_weight=ops.shape(x["parallel"]["source"])[0])
        return self.align_weight * value / _replicas()

    def evaluate(self, *args, return_dict=False, **kwargs):
        if not self.align_weight:
            return super().evaluate(*args, return_dict=return_dict, **kwargs)
        # validation pairs come without parallel sentences: no align_loss to report
        logs = super().evaluate(*args, return_dict=True, **kwargs)
        logs.pop("align_loss", None)
        if return_dict:
            return logs
        return list(logs.values()) if len(logs) > 1 else next(iter(logs.values()))

    def test_step(self, data):
        import tensorflow as tf

        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        similarity, emb = self._forward(x, training=False)
        loss = self.pair_loss_value(x, y, similarity, emb)
        self._loss_tracker.update_state(loss * _replicas(), sample_weight=tf.shape(similarity)[0])
        return _per_step_logs(self.compute_metrics(x, y, similarity))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if getattr(self, "_state_built", False):
            return
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _forward(self, inputs, training=False):
        """``(similarity, {"base", "ref"[, "negative"]: embeddings})``, one encoder call."""
        names = [k for k in ("base", "ref", "negative") if k in inputs]
        n = ops.shape(inputs["base"])[0]
        out = self.encoder(ops.concatenate([inputs[k] for k in names], axis=0), training=training)
        emb = {k: out[i * n : (i + 1) * n] for i, k in enumerate(names)}
        return self.similarity(emb["base"], emb["ref"]), emb

    def call(self, inputs, training=False):
        return self._forward(inputs, training)[0]

    def get_config(self):
        config = super().get_config()
        config["encoder"] = keras.layers.serialize(self.encoder)
        config["loss"] = self.pair_loss
        config["align_weight"] = self.align_weight
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)
