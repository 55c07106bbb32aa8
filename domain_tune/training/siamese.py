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

    def build(self, a_shape=None, b_shape=None):
        self.built = True  # no weights

    def compute_output_shape(self, a_shape, b_shape=None):
        return a_shape[:-1]

    def get_config(self):
        config = super().get_config()
        config.update({"clip": self.clip})
        return config


def _replicas():
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _add_gradients(a, b):
    """Element-wise sum of two gradient lists (``None`` for no gradient; sparse rows concatenated)."""
    import tensorflow as tf

    out = []
    for x, y in zip(a, b):
        if x is None or y is None:
            out.append(y if x is None else x)
        elif isinstance(x, tf.IndexedSlices) and isinstance(y, tf.IndexedSlices):
            indices = tf.concat([tf.cast(x.indices, tf.int64), tf.cast(y.indices, tf.int64)], 0)
            out.append(tf.IndexedSlices(tf.concat([x.values, y.values], 0), indices,
                                        x.dense_shape))
        else:
            out.append(tf.convert_to_tensor(x) + tf.convert_to_tensor(y))
    return out


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

    Optional ``"negative"``, ``"negative_2"``, ... inputs (hard negatives,
    ``""`` for none) go through the same encoder call and into the in-batch
    losses.  With ``mini_batch_size`` the training step caches gradients
    (:mod:`domain_tune.training.gradcache`): the encoder sees at most that
    many texts at once, whatever the batch size.  An optional ``"parallel"``
    input (a batch of parallel sentences, see
    :mod:`domain_tune.training.distillation`) adds ``align_weight`` times the
    distillation term to the training loss, tracked as ``align_loss``.
    ``distinct_texts`` encodes each distinct text of a training batch once
    (exact for optimizers that sum a table's gradient slices, see ``_forward``);
    evaluation always does.
    """

    def __init__(self, encoder, loss="mse", mini_batch_size=None, align_weight=0.0,
                 align_loss="embedding", distinct_texts=False, scale=None, **kwargs):
        super().__init__(**kwargs)
        self.distinct_texts = bool(distinct_texts)  # training: encode each distinct text once
        self.encoder = encoder
        self.pair_loss = loss
        self.scale = None if scale is None else float(scale)  # of cosent / in-batch (None: default)
        self.mini_batch_size = mini_batch_size
        self.similarity = AngularSimilarity(name="angular_similarity")
        self.align_weight = float(align_weight)
        self.align_loss = align_loss
        if self.align_weight:
            self.align_tracker = keras.metrics.Mean(name="align_loss")

    @staticmethod
    def text_inputs(inputs):
        """The text inputs in encoder order: base, ref, negative, negative_2, ..."""
        from domain_tune.datasets.pairs import negative_columns

        return ["base", "ref", *negative_columns(inputs)]

    def build(self, input_shape=None):
        self.built = True

    def build_compiled(self):
        """Create the metrics' and the optimizer's state, as Keras does before the first step.

        Under a ``tf.distribute`` strategy Keras builds a compiled model from
        a batch averaged across replicas, which cannot work for string inputs;
        building here first (inside the strategy scope) makes that step a no-op.
        Keras' own build (``_symbolic_build``) traces the whole forward pass
        once only to learn the prediction's shape (0.26 s for USE-m3); the
        prediction is one similarity per pair, so the metrics are built from
        that spec directly.  The model computes its loss itself (no compiled
        loss), and every layer is built already (the encoder when it was
        made; this model and its similarity, which have no weights of their
        own, here), so nothing else needed the trace.  A model whose layers
        are not all built (an encoder built lazily) is built by Keras' trace.
        """
        self.build()
        self.similarity.build()
        if not all(layer.built for layer in self._flatten_layers()):
            return self._build_compiled_by_tracing()
        if self._compile_loss is not None and not self._compile_loss.built:
            return self._build_compiled_by_tracing()
        if self._compile_metrics is not None and not self._compile_metrics.built:
            score = keras.KerasTensor((1,), "float32")
            self._compile_metrics.build(score, score)  # y_true, y_pred: a score per pair
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        self._post_build()
        self._state_built = True

    def _build_compiled_by_tracing(self):
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

        from domain_tune.datasets.pairs import negative_columns

        negatives = {}
        columns = negative_columns(emb)
        if columns:  # every hard negative of the batch is a candidate for every anchor
            negatives = {"negative_emb": ops.concatenate([emb[k] for k in columns], axis=0),
                         "negative_texts": ops.concatenate([x[k] for k in columns], axis=0)}
        value = losses.get(self.pair_loss, self.scale)(
            ops.cast(y, "float32"), ops.cast(similarity, "float32"), emb["base"], emb["ref"],
            x["ref"], x["base"], **negatives,
        )
        return value / _replicas()

    def make_train_function(self, force=False):
        """Keras' training function, called with Grappler's graph rewrites off.

        Grappler rewrites a function's graph when it is first run: 0.4-0.5 s for
        the training step's graph (about 2,200 nodes), which changed no step
        time it was measured on (``results/speed.md``); the model's other
        functions (evaluation, inference) keep the rewrites, which make
        inference 4-6% faster.
        """
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force)
        self.train_function = without_graph_rewrites(self.train_function)
        return self.train_function

    def train_step(self, data):
        import tensorflow as tf

        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.mini_batch_size:
            from domain_tune.training.gradcache import cached_train_step

            loss, similarity, grads = cached_train_step(self, x, y, self.mini_batch_size)
            if "parallel" in x:  # the distillation term: its own (small) batch and tape
                with tf.GradientTape() as tape:
                    scaled = self.optimizer.scale_loss(self.alignment_value(x))
                grads = _add_gradients(grads, tape.gradient(scaled, self.trainable_weights))
        else:
            with tf.GradientTape() as tape:
                similarity, emb = self._forward(x, training=True, distinct=self.distinct_texts)
                loss = self.pair_loss_value(x, y, similarity, emb)
                scaled = self.optimizer.scale_loss(loss + self.alignment_value(x))
            grads = tape.gradient(scaled, self.trainable_weights)
        self._loss_tracker.update_state(loss * _replicas(), sample_weight=tf.shape(similarity)[0])
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return _per_step_logs(self.compute_metrics(x, y, similarity))

    def alignment_value(self, x):
        """``align_weight`` x the distillation term of ``x["parallel"]`` (0 without), per replica."""
        if "parallel" not in x:
            return 0.0
        from domain_tune.training.distillation import alignment_loss

        value = alignment_loss(self.encoder, x["parallel"], training=True, loss=self.align_loss)
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

    def _forward(self, inputs, training=False, distinct=True):
        """``(similarity, {"base", "ref"[, "negative", ...]: embeddings})``, one encoder call.

        With ``distinct`` each distinct text of the batch is encoded once and its
        embedding gathered for every place it occurs: pair data repeats texts (a
        concept's label in many pairs, ``""`` for a missing hard negative), so
        the encoder often sees half the texts.  The dense gradient is the same
        (the sum over a text's places), but an embedding table's sparse gradient
        then holds one slice per distinct text instead of one per place, which
        changes Keras' Adam: it squares each slice for the second moment.
        Training therefore encodes distinct texts only when ``distinct_texts``
        says the optimizer sums slices first (``lazy-adam``), and for the same
        reason only then runs the encoder's packed pass, which reads each
        distinct token's row once (see ``SentenceEncoder.call``).
        """
        import tensorflow as tf

        names = self.text_inputs(inputs)
        n = ops.shape(inputs["base"])[0]
        texts = ops.concatenate([inputs[k] for k in names], axis=0)
        if distinct:
            texts, where = tf.unique(texts)
        out = self.encoder(texts, training=training, **self.encoder_call_options(distinct))
        if distinct:
            out = tf.gather(out, where)
        emb = {k: out[i * n : (i + 1) * n] for i, k in enumerate(names)}
        return self.similarity(emb["base"], emb["ref"]), emb

    def encoder_call_options(self, distinct):
        """Keyword arguments for the encoder's calls: its packed pass where that is exact.

        The packed pass reads each distinct token's row once (one gradient
        slice per distinct token), so training uses it only with ``distinct``
        (optimizers that sum slices, see ``_forward``), and only for a
        :class:`~domain_tune.models.sentence_encoder.SentenceEncoder`.
        """
        from domain_tune.models.sentence_encoder import SentenceEncoder

        return {"packed": True} if distinct and isinstance(self.encoder, SentenceEncoder) else {}

    def call(self, inputs, training=False):
        return self._forward(inputs, training)[0]

    def get_config(self):
        config = super().get_config()
        config["encoder"] = keras.layers.serialize(self.encoder)
        config["loss"] = self.pair_loss
        config["scale"] = self.scale
        config["mini_batch_size"] = self.mini_batch_size
        config["align_weight"] = self.align_weight
        config["align_loss"] = self.align_loss
        config["distinct_texts"] = self.distinct_texts
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        return cls(**config)


def without_graph_rewrites(function):
    """``function`` (a ``tf.function``) called with Grappler's rewrites off.

    The option travels with each call (TensorFlow's per-thread function-call
    options, which also key the function's instantiation), so it applies to
    this function only and leaves the process's configuration alone.
    """
    import functools

    from tensorflow.python.eager import context

    options = None

    @functools.wraps(function)
    def call(*args, **kwargs):
        nonlocal options
        ctx = context.context()
        saved = ctx.function_call_options
        if options is None:
            from tensorflow.core.protobuf import config_pb2

            config = config_pb2.ConfigProto.FromString(saved.config_proto_serialized)
            config.graph_options.rewrite_options.disable_meta_optimizer = True
            options = context.FunctionCallOptions(saved.executor_type, config)
        ctx.function_call_options = options
        try:
            return function(*args, **kwargs)
        finally:
            ctx.function_call_options = saved

    call.unwrapped = function
    return call
