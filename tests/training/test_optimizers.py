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


def _gradients(variables, step):
    """A sparse table gradient (repeated rows) and a dense kernel gradient, as in training."""
    table, kernel = variables
    ids = tf.constant([[3, 7, 7, 12], [40, 3, 0, 49]][step % 2])
    with tf.GradientTape() as tape:
        rows = tf.gather(tf.convert_to_tensor(table.value), ids)  # dense read -> IndexedSlices
        out = tf.matmul(rows, kernel.value) * (step + 1.5)
        loss = tf.reduce_sum(tf.sin(out) * out)
    grads = tape.gradient(loss, [table.value, kernel.value])
    assert isinstance(grads[0], tf.IndexedSlices)
    return grads


def _run(optimizer, steps=4):
    variables = _variables()
    for step in range(steps):
        optimizer.apply_gradients(zip(_gradients(variables, step), variables))
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables[2:]]


@pytest.mark.parametrize("clipnorm", [None, 1.0])
@pytest.mark.parametrize("eager", [True, False])
def test_fused_adam_equals_keras_adam(clipnorm, eager):
    kwargs = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.9999, epsilon=1e-7, clipnorm=clipnorm)
    ours, reference = Adam(**kwargs), keras.optimizers.Adam(**kwargs)
    got = _run(ours) if eager else _graph_run(ours)
    want = _run(reference)
    assert len(got) == len(want) == 6  # table, kernel, and m, v of each
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


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

    graph = step_fn.get_concrete_function().graph
    return sorted(op.type for op in graph.get_operations()
                  for out in op.outputs if out.shape.as_list() == [ROWS, DIM])


def test_fused_adam_makes_no_table_sized_temporary():
    # Keras' Adam: densified gradients and element-wise temporaries of the table's size
    assert len(_table_sized_outputs(keras.optimizers.Adam(learning_rate=0.01))) >= 8
    # ours: only the aliasing whole-table read of the forward pass (no copy)
    assert _table_sized_outputs(Adam(learning_rate=0.01)) == ["ReadVariableOp"]


def test_lazy_adam_dense_gradient_equals_keras_adam_and_sparse_rows_stay():
    kwargs = dict(learning_rate=0.01, clipnorm=1.0)
    # one step: later steps differ through the table (lazy rows) by design
    got, want = _run(LazyAdam(**kwargs), 1), _run(keras.optimizers.Adam(**kwargs), 1)
    np.testing.assert_allclose(got[1], want[1], rtol=2e-6, atol=1e-7)  # the dense kernel
    untouched = sorted(set(range(ROWS)) - {0, 3, 7, 12, 40, 49})
    np.testing.assert_array_equal(got[0][untouched], _variables()[0].numpy()[untouched])
