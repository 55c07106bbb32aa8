"""Optimizers for the recipe: Adam (the article's) and LazyAdam; learning-rate schedules.

Adam's moment decay touches every row, so the sparse gradient of the
embedding table (``tf.IndexedSlices``, only the batch's rows) still means a
dense update of all 128,000 x 512 rows and their two moment tables every
step.  Keras' Adam writes that update as separate element-wise ops on
densified gradients (``g - m``, ``* (1 - b1)``, ``g^2 - v``, ...), each of
which creates and frees a table-sized temporary (262 MB for USE-m3), about
ten per step.  :class:`Adam` computes the same numbers (bit for bit in the
tests) with two in-place passes over the tables compiled by XLA and a
gather / scatter of the batch's rows: nothing table-sized is allocated.
:class:`LazyAdam` updates the moments and weights of the rows in the batch
only (the "lazy" Adam of TF Addons / PyTorch's SparseAdam); dense gradients
get exactly Keras' Adam update.
"""

import keras
import tensorflow as tf
from keras import ops

from domain_tune.models.layers import tf_variable

OPTIMIZERS = ("adam", "lazy-adam")


def _multi_replica():
    ctx = tf.distribute.get_replica_context()
    return ctx is not None and ctx.num_replicas_in_sync > 1


class _ClipGlobalBatchGradient:
    """Clip the gradient of the global batch, not each replica's share of it.

    Keras clips (``clipnorm``) before summing the replicas' gradients, so
    under ``tf.distribute`` every replica's partial gradient is clipped on its
    own and training drifts away from single-device training.  Here the
    gradients are all-reduced first and clipped after, which is what a single
    device computing the whole batch does.
    """

    def _clip_gradients(self, grads):
        if _multi_replica():
            return grads  # clipped in _backend_update_step, after the all-reduce
        return super()._clip_gradients(self._before_clipping(grads))

    def _before_clipping(self, grads):
        return grads

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not _multi_replica():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        variables = [tf_variable(v) for v in trainable_variables]
        reduced = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        clipped = super()._clip_gradients(self._before_clipping([g for g, _ in reduced]))
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy,
            list(zip(clipped, variables)), learning_rate,
        )


def _fusable(optimizer, variable):
    """Whether the fused kernel can update ``variable``: a plain TF resource variable."""
    if optimizer.amsgrad or tf.distribute.has_strategy():
        return False  # distributed variables: Keras' own update (strategy-aware assigns)
    return isinstance(tf_variable(variable), tf.Variable) and hasattr(tf_variable(variable), "handle")


@tf.function(jit_compile=True, autograph=False)
def _decay_moments(m, v, c1, c2):
    """``m += (0 - m) c1``, ``v += (0 - v) c2``: Keras' update of the rows without gradient.

    Compiled by XLA into one loop over the tables that writes them in place.
    """
    m.assign_add((0.0 - m) * c1)
    v.assign_add((0.0 - v) * c2)


@tf.function(jit_compile=True, autograph=False)
def _apply_moments(var, m, v, alpha, epsilon):
    """``w -= alpha m / (sqrt(v) + eps)`` over the whole table, in place (XLA)."""
    var.assign_sub((m * alpha) / (tf.sqrt(v) + epsilon))


class _FusedAdamUpdate:
    """Keras' Adam update of a table's sparse gradient, in place.

    Keras densifies the slices ``g`` for the first moment and squares them
    *per occurrence* for the second (``ops.square`` of ``tf.IndexedSlices``),
    so a row seen ``k`` times in a batch gets ``sum g`` and ``sum g^2``
    (tf_keras, the article's Keras, does the same); ``ResourceApplyAdam``
    would square the sum.  The same numbers come from: the old moments of the
    batch's rows (a gather), an in-place decay of every row, the batch's rows
    overwritten with Keras' update of them, then the weight step over the
    whole table.  The two whole-table passes are compiled by XLA, which
    fuses each into one loop writing the variables in place.  Dense
    gradients (the small weights) get Keras' own update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not _fusable(self, variable) or not isinstance(gradient, tf.IndexedSlices):
            # dense gradients (the small weights): Keras' own ops and rounding
            return super().update_step(gradient, variable, learning_rate)
        var = tf_variable(variable)
        dtype = var.dtype
        step = ops.cast(self.iterations + 1, dtype)
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        lr, eps = ops.cast(learning_rate, dtype), ops.cast(self.epsilon, dtype)
        index = self._get_variable_index(variable)
        m, v = tf_variable(self._momentums[index]), tf_variable(self._velocities[index])
        b1_power, b2_power = ops.power(b1, step), ops.power(b2, step)
        values = tf.cast(gradient.values, dtype)
        rows, positions = tf.unique(gradient.indices)
        n = tf.shape(rows)[0]
        g1 = tf.math.unsorted_segment_sum(values, positions, n)
        g2 = tf.math.unsorted_segment_sum(tf.square(values), positions, n)
        m_rows, v_rows = tf.gather(m, rows), tf.gather(v, rows)
        # 1 - beta in double precision, then float32, as Keras computes it
        c1, c2 = ops.cast(1 - self.beta_1, dtype), ops.cast(1 - self.beta_2, dtype)
        # Stateful ops on the same variables run in program order (eagerly, and
        # in a tf.function through its automatic control dependencies).
        _decay_moments(m, v, c1, c2)
        m.scatter_update(tf.IndexedSlices(m_rows + (g1 - m_rows) * c1, rows))
        v.scatter_update(tf.IndexedSlices(v_rows + (g2 - v_rows) * c2, rows))
        alpha = lr * ops.sqrt(1 - b2_power) / (1 - b1_power)
        _apply_moments(var, m, v, alpha, eps)


@keras.saving.register_keras_serializable(package="domain_tune")
class Adam(_ClipGlobalBatchGradient, _FusedAdamUpdate, keras.optimizers.Adam):
    """Keras' Adam as one fused in-place kernel per variable, with clipping of the
    global batch's gradient under tf.distribute."""


@keras.saving.register_keras_serializable(package="domain_tune")
def _summed_slices(gradient):
    """``gradient`` with one slice per row (repeated rows summed), if it is sparse."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


class LazyAdam(_ClipGlobalBatchGradient, keras.optimizers.Adam):
    """Adam whose update of a sparse gradient touches only the gradient's rows.

    Everything it computes is a function of the dense gradient: repeated rows
    of a sparse gradient are summed before the clipping norm and the moments,
    so the same batch gives the same step however its gradient was sliced
    (one slice per place of a text, or per distinct text; per replica or not).
    """

    def _before_clipping(self, grads):
        return [_summed_slices(g) for g in grads]

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        alpha = lr * ops.sqrt(1 - ops.power(b2, step)) / (1 - ops.power(b1, step))
        # Rows may repeat within a batch (when not summed before clipping): sum them first.
        summed = _summed_slices(gradient)
        unique, grad = summed.indices, tf.cast(summed.values, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = b1 * tf.gather(tf_variable(m), unique) + (1 - b1) * grad
        v_rows = b2 * tf.gather(tf_variable(v), unique) + (1 - b2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, unique))  # scatter updates
        self.assign(v, tf.IndexedSlices(v_rows, unique))
        update = alpha * m_rows / (tf.sqrt(v_rows) + ops.cast(self.epsilon, dtype))
        self.assign_sub(variable, tf.IndexedSlices(update, unique))


def sparse_table_access(name, distributed=None):
    """Whether training with optimizer ``name`` may read and update tables sparsely.

    ``adam`` updates a whole embedding table every step.  Its fused update
    (:class:`Adam`) works in place whatever the table's mode, but Keras' own
    update, used under a ``tf.distribute`` strategy, needs the table out of
    TensorFlow's copy-on-read mode (see
    :func:`domain_tune.models.layers.use_sparse_reads`), else each of its dense
    writes copies the table first.  ``distributed`` defaults to whether a
    strategy scope is open.
    """
    if distributed is None:
        distributed = tf.distribute.has_strategy()
    return name != "adam" or not distributed


def make_optimizer(name, learning_rate, beta_1, beta_2, epsilon, clipnorm):
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}")
    cls = LazyAdam if name == "lazy-adam" else Adam
    return cls(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
               clipnorm=clipnorm or None)


SCHEDULES = ("constant", "linear", "cosine")


@keras.saving.register_keras_serializable(package="domain_tune")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then ``kind`` decay to 0 at ``total_steps``.

    ``kind`` is ``constant`` (no decay), ``linear`` or ``cosine``.  The step is
    the optimizer's ``iterations``, which a resumed run restores, so the
    schedule continues where it stopped.
    """

    def __init__(self, peak, total_steps, warmup_steps=0, kind="linear"):
        if kind not in SCHEDULES:
            raise ValueError(f"kind must be one of {SCHEDULES}")
        self.peak = float(peak)
        self.total_steps = int(max(1, total_steps))
        self.warmup_steps = int(max(0, min(warmup_steps, self.total_steps)))
        self.kind = kind

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = (step + 1.0) / max(self.warmup_steps, 1)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.kind == "linear":
            decay = 1.0 - progress
        elif self.kind == "cosine":
            decay = 0.5 * (1.0 + tf.cos(3.141592653589793 * progress))
        else:
            decay = tf.ones_like(progress)
        factor = tf.where(step < self.warmup_steps, warm, decay)
        return self.peak * factor

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind}


def learning_rate(peak, schedule="constant", warmup=0.0, total_steps=None):
    """A float for a constant rate without warm-up, else a :class:`WarmupDecay`."""
    if schedule == "constant" and warmup == 0:
        return peak
    if not total_steps:
        raise ValueError("a learning-rate schedule needs the number of training steps")
    return WarmupDecay(peak, total_steps, round(warmup * total_steps), schedule)
