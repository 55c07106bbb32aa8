"""The fused Adam update equals Keras' Adam; LazyAdam keeps unseen rows."""

import numpy as np
import pytest

from domain_tune import _env

_env.import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from domain_tune.training.optimizers import Adam, LazyAdam  # noqa: E402

ROWS, DIM = 50, 6


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    table = keras.Variable(rng.normal(size=(ROWS, DIM)).astype("float32"), name="table")
    kernel = keras.Variable(rng.normal(size=(DIM, 3)).astype("float32"), name="kernel")
    return [table, kernel]


BATCHES = [[3, 7, 7, 12], [40, 3, 0, 49], [3, 7, 7, 12], [40, 3, 0, 49],
           [21, 22, 3, 21], [40, 3, 0, 49], [3, 7, 7, 12], [30, 31, 32, 33]]


def _gradients(variables, step):
    """A sparse table gradient (repeated rows) and a dense kernel gradient, as in training.

    Rows join at later steps (21, 22 at step 4; 30-33 at step 7) and others
    rest for a few steps, so an update that touches only some rows is tested.
    The loss amplifies any difference in the weights step after step, so the
    dense kernel's update, which runs in TensorFlow's fused kernel and rounds
    differently from Keras' twelve ops, is compared on its own in
    :func:`test_fused_dense_update_equals_keras_adam`; here both optimizers
    update the kernel with Keras' own formulas (``_keras_dense``).
    """
    table, kernel = variables
    ids = tf.constant(BATCHES[step % len(BATCHES)])
    with tf.GradientTape() as tape:
        rows = tf.gather(tf.convert_to_tensor(table.value), ids)  # dense read -> IndexedSlices
        out = tf.matmul(rows, kernel.value) * (step + 1.5)
        loss = tf.reduce_sum(tf.sin(out) * out)
    grads = tape.gradient(loss, [table.value, kernel.value])
    assert isinstance(grads[0], tf.IndexedSlices)
    return grads


class KerasDenseAdam(Adam):
    """Our Adam with Keras' own update for dense gradients: the table's path is what is under test."""

    def _dense_update(self, gradient, variable, learning_rate):
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)


def _run(optimizer, steps=4):
    variables = _variables()
    for step in range(steps):
        optimizer.apply_gradients(zip(_gradients(variables, step), variables))
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables[2:]]


@pytest.mark.parametrize("clipnorm", [None, 1.0])
@pytest.mark.parametrize("eager", [True, False])
# the active rows only (at most 12 of 50 rows are active), the whole tables every step, and a
# switch from the one to the other at step 7, when the eleventh row becomes active
@pytest.mark.parametrize("dense_fraction", [1.0, 0.0, 0.2])
def test_fused_adam_equals_keras_adam(clipnorm, eager, dense_fraction):
    kwargs = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.9999, epsilon=1e-7, clipnorm=clipnorm)
    # 4 steps to 1e-6 on every path; 10 steps (past the switch) to 1e-6 on the active rows, to
    # 2e-5 where XLA's whole-table passes may contract multiply-adds (FMA), a rounding that this
    # test's loss (sin(x) x, scaled up every step) amplifies step after step
    for steps, rtol in ((4, 1e-6), (10, 1e-6 if dense_fraction == 1.0 else 2e-5)):
        ours, reference = KerasDenseAdam(**kwargs), keras.optimizers.Adam(**kwargs)
        ours.DENSE_FRACTION = dense_fraction
        got = _run(ours, steps) if eager else _graph_run(ours, steps)
        want = _run(reference, steps)
        assert len(got) == len(want) == 6  # table, kernel, and m, v of each
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)
    # rows that never had a gradient are untouched, as Keras leaves them
    never = sorted(set(range(ROWS)) - {r for batch in BATCHES for r in batch})
    np.testing.assert_array_equal(got[0][never], _variables()[0].numpy()[never])
    np.testing.assert_array_equal(got[2][never], 0.0)


def _fixed_gradients(steps, seed=1):
    """Gradients that do not depend on the weights: a table's slices, a kernel's and a bias'.

    Scales range over six orders of magnitude; some steps give the bias a zero
    gradient, and one gives the kernel a large one (clipped when clipnorm is set).
    """
    rng = np.random.default_rng(seed)
    out = []
    for step in range(steps):
        ids = tf.constant(BATCHES[step % len(BATCHES)])
        table = tf.IndexedSlices(tf.constant(rng.normal(size=(len(BATCHES[0]), DIM)), tf.float32),
                                 ids, tf.constant([ROWS, DIM]))
        scale = 10.0 ** rng.integers(-4, 2, size=(DIM, 3))
        kernel = tf.constant(rng.normal(size=(DIM, 3)) * scale * (50.0 if step == 3 else 1.0),
                             tf.float32)
        bias = tf.constant(np.zeros(3) if step % 3 == 2 else rng.normal(size=3), tf.float32)
        out.append([table, kernel, bias])
    return out


@pytest.mark.parametrize("beta_2", [0.9999, 0.999, 0.5])
@pytest.mark.parametrize("clipnorm", [None, 1.0])
@pytest.mark.parametrize("eager", [True, False])
def test_fused_dense_update_equals_keras_adam(beta_2, clipnorm, eager):
    """The dense weights' update (TensorFlow's fused kernel) gives Keras' Adam's numbers.

    The kernel computes ``1 - beta`` in float32 (for 0.9999: 1.7e-4 relative
    from Keras' 1e-4; for 0.9: 2.4e-7); the update compensates (see
    ``_kernel_scales``), so 12 steps agree to 1e-6 with every weight and
    moment, for a beta_2 whose float32 complement is far off (0.9999, 0.999)
    and one whose is exact (0.5).
    """
    steps = 12
    grads = _fixed_gradients(steps)
    kwargs = dict(learning_rate=0.01, beta_1=0.9, beta_2=beta_2, epsilon=1e-7, clipnorm=clipnorm)

    def run(optimizer, eager):
        rng = np.random.default_rng(2)
        variables = [keras.Variable(rng.normal(size=(ROWS, DIM)).astype("float32")),
                     keras.Variable(rng.normal(size=(DIM, 3)).astype("float32")),
                     keras.Variable(rng.normal(size=3).astype("float32"))]
        optimizer.build(variables)
        def apply(values, ids, kernel, bias):
            table = tf.IndexedSlices(values, ids, tf.constant([ROWS, DIM]))
            optimizer.apply_gradients(zip([table, kernel, bias], variables))

        apply = apply if eager else tf.function(apply)
        for table, kernel, bias in grads[:steps]:
            apply(table.values, table.indices, kernel, bias)
        return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables[2:]]

    got, want = run(Adam(**kwargs), eager), run(keras.optimizers.Adam(**kwargs), True)
    assert len(got) == len(want) == 9  # three weights, and m, v of each
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the uncompensated kernel is measurably off with the article's beta_2 (what the test guards)
    if beta_2 == 0.9999 and clipnorm is None and eager:
        from domain_tune.training import optimizers
        original = optimizers._kernel_scales
        optimizers._kernel_scales = lambda beta_1, beta_2, dtype: (1.0, 1.0)
        try:
            off = run(Adam(**kwargs), True)
        finally:
            optimizers._kernel_scales = original
        v_kernel = 6  # table, kernel, bias, m/v of the table, m of the kernel, v of the kernel
        assert not np.allclose(off[v_kernel], want[v_kernel], rtol=1e-5, atol=0)


def test_fused_dense_update_runs_in_the_fused_kernel():
    optimizer = Adam(learning_rate=0.01, clipnorm=1.0)
    kernel = keras.Variable(np.ones((DIM, 3), "float32"))
    optimizer.build([kernel])
    step = tf.function(lambda g: optimizer.apply_gradients([(g, kernel)]))
    graph = step.get_concrete_function(tf.TensorSpec((DIM, 3), tf.float32)).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("ResourceApplyAdam") == 1
    assert types.count("Sqrt") == 1  # the clipping norm's; none of Keras' element-wise formulas
    assert "SelectV2" not in types  # clipped without tf.clip_by_norm's guards (the same numbers)


def _active_rows_only(optimizer):
    optimizer.DENSE_FRACTION = 1.0  # never the whole-table path (which needs no mask)
    return optimizer


def _load(optimizer, source, variables, weights):
    for target, value in zip(optimizer.variables, source):
        target.assign(value)
    for v, value in zip(variables, weights):
        v.assign(value)


@pytest.mark.parametrize("used_before", [False, True])
def test_fused_adam_rebuilds_its_active_rows_from_restored_moments(used_before):
    """A resumed run (moments loaded, then more steps) goes on as if it had never stopped."""
    kwargs = dict(learning_rate=0.01, clipnorm=1.0)
    straight = _run(_active_rows_only(Adam(**kwargs)), 9)
    first, variables = _active_rows_only(Adam(**kwargs)), _variables()
    for step in range(5):
        first.apply_gradients(zip(_gradients(variables, step), variables))
    saved = [w.numpy() for w in first.variables], [v.numpy() for v in variables]
    second = _active_rows_only(Adam(**kwargs))
    if used_before:  # its mask knows other rows: loading must make it forget them
        second.apply_gradients(zip(_gradients(variables, 7), variables))
    else:
        second.build(variables)
    _load(second, saved[0], variables, saved[1])
    second.forget_active_rows()
    for step in range(5, 9):
        second.apply_gradients(zip(_gradients(variables, step), variables))
    resumed = [v.numpy() for v in variables] + [v.numpy() for v in second.variables[2:]]
    for a, b in zip(resumed, straight):
        np.testing.assert_array_equal(a, b)


def _graph_run(optimizer, steps=4):
    """The same steps inside one tf.function (how Keras' fit runs them)."""
    variables = _variables()
    optimizer.build(variables)

    @tf.function
    def step_fn(step):
        optimizer.apply_gradients(zip(_gradients(variables, step), variables))

    for step in range(steps):
        step_fn(step)
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables[2:]]


def _table_sized_outputs(optimizer):
    variables = _variables()
    optimizer.build(variables)

    @tf.function
    def step_fn():
        optimizer.apply_gradients(zip(_gradients(variables, 0), variables))

    def table_sized(graph):  # the ops of the step and of every branch of its conditionals
        found = [op.type for op in graph.get_operations()
                 for out in op.outputs if out.shape.as_list() == [ROWS, DIM]]
        for op in graph.get_operations():
            if op.type in ("If", "StatelessIf"):
                for branch in ("then_branch", "else_branch"):
                    found += table_sized(graph._get_function(op.get_attr(branch).name).graph)
        return found

    return sorted(table_sized(step_fn.get_concrete_function().graph))


def test_fused_adam_makes_no_table_sized_temporary():
    # Keras' Adam: densified gradients and element-wise temporaries of the table's size
    assert len(_table_sized_outputs(keras.optimizers.Adam(learning_rate=0.01))) >= 8
    # ours: only the aliasing whole-table read of the forward pass (no copy), on either path
    # (the whole-table path runs inside XLA-compiled functions that write in place)
    for dense_fraction in (1.0, 0.0):
        ours = Adam(learning_rate=0.01)
        ours.DENSE_FRACTION = dense_fraction
        assert _table_sized_outputs(ours) == ["ReadVariableOp"]


def test_lazy_adam_dense_gradient_equals_keras_adam_and_sparse_rows_stay():
    kwargs = dict(learning_rate=0.01, clipnorm=1.0)
    # one step: later steps differ through the table (lazy rows) by design
    got, want = _run(LazyAdam(**kwargs), 1), _run(keras.optimizers.Adam(**kwargs), 1)
    np.testing.assert_allclose(got[1], want[1], rtol=2e-6, atol=1e-7)  # the dense kernel
    untouched = sorted(set(range(ROWS)) - {0, 3, 7, 12, 40, 49})
    np.testing.assert_array_equal(got[0][untouched], _variables()[0].numpy()[untouched])


@pytest.mark.parametrize("cls", [Adam, LazyAdam])
def test_optimizers_round_trip_through_keras_serialization(cls):
    assert keras.saving.get_registered_name(cls) == f"domain_tune>{cls.__name__}"
    config = keras.optimizers.serialize(cls(learning_rate=2e-4, clipnorm=1.0))
    back = keras.optimizers.deserialize(config)
    assert type(back) is cls
    assert back.get_config()["clipnorm"] == 1.0
    assert float(back.learning_rate) == pytest.approx(2e-4)


@pytest.mark.parametrize("cls", [Adam, LazyAdam])
def test_clipping_equals_tensorflows_clip_by_norm_bitwise(cls):
    rng = np.random.default_rng(3)
    big = tf.constant(rng.normal(size=(7, 5)) * 100, tf.float32)
    cases = [big, big * 1e-4, tf.zeros((7, 5)), tf.constant([np.inf, 1.0]),
             tf.constant([np.nan, 1.0]),
             tf.IndexedSlices(big, tf.constant([0, 3, 3, 1, 9, 2, 0]), tf.constant([10, 5]))]
    for clipnorm in (1.0, 0.5, 1e6):
        optimizer = cls(learning_rate=0.1, clipnorm=clipnorm)
        for g in cases:
            got, want = optimizer._clip_by_norm(g), tf.clip_by_norm(g, clipnorm)
            if isinstance(g, tf.IndexedSlices):
                np.testing.assert_array_equal(got.indices, want.indices)
                got, want = got.values, want.values
            np.testing.assert_array_equal(got.numpy(), want.numpy())
