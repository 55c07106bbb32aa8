"""Optimizers for the recipe: Adam (the article's) and LazyAdam; learning-rate schedules.

Keras' Adam writes every row of an embedding table every step, although
its gradient (``tf.IndexedSlices``) holds only the batch's rows: 128,000 x
512 weights and two moment tables streamed through memory per step, as
element-wise ops that each create and free a table-sized temporary (262 MB
for USE-m3).  :class:`Adam` computes the same numbers on the rows that
Keras' update can change (those that ever had a gradient) and leaves the
rest, which Keras' update leaves unchanged too.  :class:`LazyAdam` updates
the moments and weights of the batch's rows only (the "lazy" Adam of TF
Addons / PyTorch's SparseAdam: other numbers); dense gradients get exactly
Keras' Adam update.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from domain_tune.models.buffers import zeros_tensor
from domain_tune.models.layers import tf_variable
from domain_tune.training import recipe

OPTIMIZERS = recipe.OPTIMIZERS


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

    def _clip_by_norm(self, values, axes=None):
        """``tf.clip_by_norm(values, clipnorm)`` (Keras' clipping), bitwise, in half the ops.

        TensorFlow's version guards ``sqrt`` against a zero sum with two
        ``where`` ops, which matters only for a gradient taken through the
        clipping, and opens a name scope: tracing it for USE-m3's 27 weights
        was half of the optimizer's share of the first training step.  The
        arithmetic is the same: ``values * c / max(sqrt(sum(values * values)), c)``
        (``sqrt(0)`` is 0, as the guarded form gives).  A sparse gradient is
        clipped by the norm of its slices, as TensorFlow does.
        """
        if axes is not None or not np.isscalar(self.clipnorm):
            return super()._clip_by_norm(values, axes)
        clip = max(float(self.clipnorm), 0.0)
        sparse = isinstance(values, tf.IndexedSlices)
        t = values.values if sparse else tf.convert_to_tensor(values)
        clipped = (t * clip) / tf.maximum(tf.sqrt(tf.reduce_sum(t * t)), clip)
        return tf.IndexedSlices(clipped, values.indices, values.dense_shape) if sparse else clipped

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
    """``m += (0 - m) c1``, ``v += (0 - v) c2`` over whole tables, in place (XLA)."""
    m.assign_add((0.0 - m) * c1)
    v.assign_add((0.0 - v) * c2)


@tf.function(jit_compile=True, autograph=False)
def _apply_moments(var, m, v, alpha, epsilon):
    """``w -= alpha m / (sqrt(v) + eps)`` over the whole table, in place (XLA)."""
    var.assign_sub((m * alpha) / (tf.sqrt(v) + epsilon))


@tf.function(jit_compile=True, autograph=False)
def _nonzero_rows(m, v):
    """Which rows of the moment tables hold a non-zero value (XLA: one pass, no temporary)."""
    return tf.reduce_any(tf.not_equal(m, 0.0) | tf.not_equal(v, 0.0), axis=1)


def _kernel_scales(beta_1, beta_2, dtype):
    """How ``ResourceApplyAdam``'s inputs are scaled so that it computes Keras' Adam.

    Keras computes ``c = 1 - beta`` in double precision, then rounds it to the
    variable's type; the kernel rounds ``beta`` first and subtracts in that
    type.  In float32, ``1 - float32(0.9)`` is 2.4e-7 above Keras' 0.1 and
    ``1 - float32(0.9999)`` is 1.7e-4 above Keras' 1e-4.  Returns
    ``(gradient_scale, second_moment_scale)``: a gradient multiplied by
    ``c1 / c1_kernel`` gives the first moment Keras' increment, and a second
    moment stored as ``K v``, with ``K = (c1 / c1_kernel)^2 c2_kernel / c2``,
    then gets Keras' increment times ``K``.  (The kernel's decay factors
    ``1 - c_kernel`` equal Keras' to 3e-8.)
    """
    np_dtype = tf.as_dtype(dtype).as_numpy_dtype

    def ratio(beta):  # the kernel's 1 - beta over Keras'
        kernel, keras_value = float(np_dtype(1) - np_dtype(beta)), float(np_dtype(1 - beta))
        return kernel / keras_value if keras_value and kernel else 1.0

    gradient_scale = 1.0 / ratio(beta_1)
    return gradient_scale, gradient_scale**2 * ratio(beta_2)


class _UntouchedZeroSlots:
    """Zero-initialised slots of a table (Adam's moments) whose memory is mapped only where written.

    Keras fills each new slot variable with ``zeros``: for USE-m3's table two
    262 MB buffers written when the optimizer is built, 128,000 page faults.
    Both optimizers here write a table's moments only on the rows that had a
    gradient (unless most of the table is active), so the slots of a large
    table start from :func:`domain_tune.models.buffers.zeros_tensor` instead:
    the same zeros, in pages that the kernel maps only when a row in them is
    written.  Under a ``tf.distribute`` strategy Keras creates the slots as
    usual.
    """

    # slots at least this large (smaller ones are not worth a system call)
    UNTOUCHED_BYTES = 2**20

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        shape = tuple(reference_variable.shape)
        nbytes = int(np.prod(shape)) * tf.as_dtype(reference_variable.dtype).size
        if (isinstance(initializer, str) and initializer == "zeros" and len(shape) == 2
                and nbytes >= self.UNTOUCHED_BYTES and not tf.distribute.has_strategy()):
            initializer = _untouched_zeros
        return super().add_variable_from_reference(reference_variable, name, initializer)


def _untouched_zeros(shape, dtype=None):
    if not tf.executing_eagerly():  # built while a function is traced: a graph tensor
        return tf.zeros(shape, dtype or "float32")
    return zeros_tensor(shape, dtype or "float32")


class _FusedAdamUpdate:
    """Keras' Adam update of a table's sparse gradient, computed on the rows it changes.

    Keras' dense update of an embedding table writes every row every step:
    ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``, ``w -= alpha m / (sqrt(v) + eps)``.
    A row whose gradient has been zero since the optimizer was created has
    ``m = v = 0``, so all three leave it as it is (``0 / (0 + eps) = 0``):
    Keras' update changes only the *active* rows, those that had a gradient at
    some step.  This update keeps a mask of them and applies Keras' formulas,
    the same element-wise operations on the same values, to those rows only
    (a gather, the arithmetic, a scatter).  A short domain text touches a few
    thousand of USE-m3's 128,000 rows, so the step no longer streams the table
    and its two moments through memory (about 60 ms of a 90 ms batch-8 step).

    As in Keras, the batch's gradient slices are densified for the first
    moment and squared *per occurrence* for the second (``ops.square`` of
    ``tf.IndexedSlices``): a row seen ``k`` times gets ``sum g`` and ``sum
    g^2`` (tf_keras, the article's Keras, does the same; ``ResourceApplyAdam``
    would square the sum).  The mask is derived state: on the first update in
    a process, or after :meth:`forget_active_rows` (called when moments are
    restored from disk), it is rebuilt from the moments themselves.

    When more than ``DENSE_FRACTION`` of the rows are active (a large
    multilingual corpus), gathering them would cost more than streaming the
    tables: the update then runs as two in-place passes over the whole table
    and its moments, compiled by XLA, with the same formulas.  Neither path
    allocates a table-sized buffer.  Dense gradients (the small weights) get
    Keras' formulas in TensorFlow's ops, with the step's scalars computed once
    for all variables (:meth:`_dense_update`: the same numbers, a shorter trace).
    """

    # where both paths take about as long: python -m scripts.bench_speed.adam_update
    DENSE_FRACTION = 0.1

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._active = {}
        with tf.init_scope():
            for variable in var_list:
                var = tf_variable(variable)
                if _fusable(self, variable) and len(var.shape) == 2:
                    self._active[self._var_key(variable)] = (
                        tf.Variable(tf.zeros([var.shape[0]], tf.bool), trainable=False,
                                    name="active_rows"),
                        tf.Variable(False, trainable=False, name="active_rows_known"))

    def forget_active_rows(self):
        """Rebuild the masks of active rows from the moments at the next update."""
        for _, known in getattr(self, "_active", {}).values():
            known.assign(False)

    def _active_rows(self, variable, m, v, rows):
        """The sorted ids of the rows of ``variable`` that ever had a gradient, ``rows`` included."""
        active, known = self._active[self._var_key(variable)]

        def from_moments():
            active.assign(_nonzero_rows(m, v))
            known.assign(True)
            return tf.constant(True)

        def none_yet():  # a fresh optimizer: every moment is zero
            active.assign(tf.zeros_like(active))
            known.assign(True)
            return tf.constant(True)

        tf.cond(known, lambda: tf.constant(True),
                lambda: tf.cond(tf.equal(self.iterations, 0), none_yet, from_moments))
        active.scatter_update(tf.IndexedSlices(tf.ones_like(rows, tf.bool), rows))
        return tf.where(active)[:, 0]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._step_scalars = {}  # shared by the variables of this step (see _scalars)
        try:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_scalars = None

    def _step_cached(self, key, compute):
        """``compute()``, once per step for all the variables that ask for ``key``."""
        cache = getattr(self, "_step_scalars", None)
        if cache is None:
            return compute()
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _scalars(self, dtype, learning_rate):
        """``(alpha, c1, c2, eps)`` of this step, computed once for all its variables.

        Keras computes them again for every variable, with the same operations
        (``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)``; ``1 - beta`` in double
        precision, then ``dtype``), so sharing them changes no value.
        """
        def compute():
            step = tf.cast(self.iterations + 1, dtype)
            b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            lr = tf.cast(learning_rate, dtype)
            alpha = lr * tf.sqrt(1 - tf.pow(b2, step)) / (1 - tf.pow(b1, step))
            return (alpha, tf.constant(1 - self.beta_1, dtype),
                    tf.constant(1 - self.beta_2, dtype), tf.constant(self.epsilon, dtype))

        return self._step_cached(("keras", dtype), compute)

    def _dense_update(self, gradient, variable, learning_rate):
        """Keras' Adam update of a dense gradient, in TensorFlow's fused kernel.

        ``ResourceApplyAdam`` runs the update as one pass over the weight and
        its moments, where Keras' formulas are twelve element-wise ops, each
        streaming the variable through memory (12 -> 7 ms per step for
        USE-m3's 26 small weights; ``python -m scripts.bench_speed.dense_adam``).
        Its formulas are Keras' in the same order, except that it computes
        ``1 - beta`` in the variable's precision (see :func:`_kernel_scales`).
        So the gradient is scaled to give the first moment Keras' increment,
        the second moment is handed to the kernel scaled by ``K`` (and scaled
        back after), and the kernel's learning rate and epsilon are scaled by
        ``sqrt(K)``, which makes its step ``m alpha / (sqrt(v) + eps)``, Keras'.
        """
        var = tf_variable(variable)
        dtype = var.dtype
        k = self._kernel_scalars(dtype, learning_rate)
        index = self._get_variable_index(variable)
        m, v = tf_variable(self._momentums[index]), tf_variable(self._velocities[index])
        grad = tf.cast(gradient, dtype)
        if k["gradient_scale"] is not None:
            grad = grad * k["gradient_scale"]
        if k["second_moment_scale"] is not None:
            v.assign(v * k["second_moment_scale"])
        tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle, beta1_power=k["b1_power"],
            beta2_power=k["b2_power"], lr=k["lr"], beta1=k["b1"], beta2=k["b2"],
            epsilon=k["epsilon"], grad=grad, use_locking=False)
        if k["second_moment_scale"] is not None:
            v.assign(v / k["second_moment_scale"])

    def _kernel_scalars(self, dtype, learning_rate):
        """The inputs of ``ResourceApplyAdam`` for this step, and its scales (None: 1)."""
        def compute():
            gradient_scale, second_moment_scale = _kernel_scales(self.beta_1, self.beta_2, dtype)
            root = float(np.sqrt(second_moment_scale))
            step = tf.cast(self.iterations + 1, dtype)
            b1, b2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            return {"lr": tf.cast(learning_rate, dtype) * root, "b1_power": tf.pow(b1, step),
                    "b2_power": tf.pow(b2, step), "b1": b1, "b2": b2,
                    "epsilon": tf.constant(self.epsilon * root, dtype),
                    "gradient_scale": (None if gradient_scale == 1.0
                                       else tf.constant(gradient_scale, dtype)),
                    "second_moment_scale": (None if second_moment_scale == 1.0
                                            else tf.constant(second_moment_scale, dtype))}

        return self._step_cached(("kernel", dtype), compute)

    def update_step(self, gradient, variable, learning_rate):
        if not _fusable(self, variable):
            return super().update_step(gradient, variable, learning_rate)
        if not isinstance(gradient, tf.IndexedSlices):  # the small weights
            return self._dense_update(gradient, variable, learning_rate)
        if self._var_key(variable) not in getattr(self, "_active", {}):
            return super().update_step(gradient, variable, learning_rate)
        var = tf_variable(variable)
        dtype = var.dtype
        alpha, c1, c2, eps = self._scalars(dtype, learning_rate)
        index = self._get_variable_index(variable)
        m, v = tf_variable(self._momentums[index]), tf_variable(self._velocities[index])
        values = tf.cast(gradient.values, dtype)
        rows, positions = tf.unique(tf.cast(gradient.indices, tf.int64))
        n = tf.shape(rows)[0]
        g1 = tf.math.unsorted_segment_sum(values, positions, n)
        g2 = tf.math.unsorted_segment_sum(tf.square(values), positions, n)
        # Stateful ops on the same variables run in program order (eagerly, and
        # in a tf.function through its automatic control dependencies).
        active = self._active_rows(variable, m, v, rows)

        def active_rows_only():
            # Keras' dense gradient restricted to the active rows (zero where no slice)
            at = tf.searchsorted(active, rows, out_type=tf.int64)[:, None]
            shape = tf.stack([tf.shape(active, out_type=tf.int64)[0], var.shape[1]])
            d1, d2 = tf.scatter_nd(at, g1, shape), tf.scatter_nd(at, g2, shape)
            m_rows, v_rows = tf.gather(m, active), tf.gather(v, active)
            m_rows = m_rows + (d1 - m_rows) * c1
            v_rows = v_rows + (d2 - v_rows) * c2
            w_rows = tf.gather(var, active) - (m_rows * alpha) / (tf.sqrt(v_rows) + eps)
            m.scatter_update(tf.IndexedSlices(m_rows, active))
            v.scatter_update(tf.IndexedSlices(v_rows, active))
            var.scatter_update(tf.IndexedSlices(w_rows, active))
            return tf.constant(True)

        def whole_tables():
            # every row decays, then the batch's rows get Keras' update from their old moments
            m_rows, v_rows = tf.gather(m, rows), tf.gather(v, rows)
            _decay_moments(m, v, c1, c2)
            m.scatter_update(tf.IndexedSlices(m_rows + (g1 - m_rows) * c1, rows))
            v.scatter_update(tf.IndexedSlices(v_rows + (g2 - v_rows) * c2, rows))
            _apply_moments(var, m, v, alpha, eps)
            return tf.constant(True)

        many = tf.cast(tf.shape(active)[0], tf.float32) > self.DENSE_FRACTION * var.shape[0]
        tf.cond(many, whole_tables, active_rows_only)


@keras.saving.register_keras_serializable(package="domain_tune")
class Adam(_ClipGlobalBatchGradient, _FusedAdamUpdate, _UntouchedZeroSlots, keras.optimizers.Adam):
    """Keras' Adam, updating only the rows of a table that it changes, with clipping
    of the global batch's gradient under tf.distribute."""


def _summed_slices(gradient):
    """``gradient`` with one slice per row (repeated rows summed), if it is sparse."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


@keras.saving.register_keras_serializable(package="domain_tune")
class LazyAdam(_ClipGlobalBatchGradient, _UntouchedZeroSlots, keras.optimizers.Adam):
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


SCHEDULES = recipe.SCHEDULES


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
