"""Export an encoder as a TF Hub-style SavedModel, and save it as a ``.keras`` file.

The SavedModel maps a batch of strings to embeddings, like the TF Hub module
of USE-multilingual: ``hub.load(dir)(texts)`` or
``tf.saved_model.load(dir).signatures["serving_default"](inputs=texts)["outputs"]``
work with only ``tensorflow`` and ``tensorflow_text`` imported.  It also
carries ``variables`` and ``trainable_variables`` so that
``hub.KerasLayer(dir, trainable=True)`` can fine-tune it further.
"""

import concurrent.futures
import os

import keras
import tensorflow as tf

from domain_tune.embedding import MODEL_CONTRACT, inference_fn
from domain_tune.errors import BadInputError
from domain_tune.keras_archive import write_keras_archive
from domain_tune.models.layers import share_on_read
from domain_tune.models.loading import KERAS_FILE, saved_models_beside
from domain_tune.models.sentence_encoder import no_default_signature
from domain_tune.outputs import atomic_directory


def save_keras(model, path):
    """``model`` as the ``.keras`` file ``path``, its weights written once, in the archive.

    The same archive as ``model.save(path)``, without Keras' copy of the
    weights file into it (see :mod:`domain_tune.keras_archive`).  A table that
    was read sparsely is read without a copy of its own
    (:func:`~domain_tune.models.layers.share_on_read`).
    """
    share_on_read(model.variables)
    write_keras_archive(model, path)


def save_model_dir(model, directory):
    """``directory/model.keras`` and ``directory/saved_model/``: what ``--model DIR`` loads.

    A model tuned from a SavedModel names ``directory/saved_model/`` in its
    ``.keras`` file, not the SavedModel it was loaded from, so the directory
    stands on its own.

    The two are written at once, the ``.keras`` file on a worker thread: each
    spends much of its time outside the interpreter (HDF5 writes and the zip's
    CRC; TensorFlow's ``SaveV2`` kernel), so they overlap on two cores (the
    whole ``train`` 0.3-0.4 s shorter in interleaved pairs).  Both only read
    the model.  Neither file's error is lost: the export's is raised first,
    once the ``.keras`` write has ended too.
    """
    share_on_read(model.variables)  # before either reads the weights

    def keras_file():
        with saved_models_beside(model, "saved_model"):
            write_keras_archive(model, os.path.join(directory, KERAS_FILE))

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="save-keras") as pool:
        written = pool.submit(keras_file)
        try:
            export_saved_model(model, os.path.join(directory, "saved_model"))
        except BaseException:
            concurrent.futures.wait([written])
            raise
        written.result()


def hub_module(model):
    """A trackable object in the TF Hub reusable-SavedModel layout.

    ``__call__`` on a string batch, ``variables``, ``trainable_variables`` and
    ``regularization_losses``; the model (with its tokenizer resource) is a
    child so that every variable and asset is saved.
    """
    obj = tf.__internal__.tracking.AutoTrackable()
    restored = _restored_saved_models(model)
    if restored is None:
        # a Keras model, or any trackable callable (``hub.load(DIR)``'s object, a tf.Module);
        # a plain function's variables, if any, are saved through the traced function
        obj.model = model
        obj.variables = list(getattr(model, "variables", ()))
        obj.trainable_variables = list(getattr(model, "trainable_variables", ()))
    else:
        # a model that wraps a SavedModel: its functions read the restored variables, which
        # Keras mirrors with variables of its own; saving both wrote every weight twice
        obj.restored = restored
        obj.variables = [_raw(v) for v in model.variables]
        obj.trainable_variables = [_raw(v) for v in model.trainable_variables]
    obj.regularization_losses = []
    # the model's own inference function: already traced if the model has embedded
    # anything in this process (``train`` has), so exporting does not trace it again
    obj.__call__ = _calling_traced(inference_fn(model))
    if not isinstance(model, keras.layers.Layer):
        # a callable of unknown make: one row per text, before a SavedModel is written
        probe = ["a", "b c"]
        rows = obj.__call__(tf.constant(probe)).shape[0]
        if rows != len(probe):
            raise BadInputError(f"the model returned {rows} rows for {len(probe)} texts; "
                                f"{MODEL_CONTRACT}")
    return obj


def _calling_traced(fn):
    """A ``tf.function`` of ``fn``'s signature whose graph is one call of ``fn``'s concrete function.

    Saving a SavedModel looks a ``tf.function`` up under a context of its own
    (and a signature that calls it, under a graph's), which misses the concrete
    function traced eagerly and traces the whole body again: the encoder's
    inference function took 0.2 s each time, 0.4 s of an export.  The concrete
    function (traced here if it was not yet) is what both find in this one's
    graph; the saved function computes the same, and is traced with little cost.
    """
    concrete = fn.get_concrete_function()

    @tf.function(input_signature=fn.input_signature, autograph=False)
    def call(inputs):
        return concrete(inputs)

    return call


def _raw(variable):
    """The TensorFlow variable behind a Keras one (the same storage)."""
    return getattr(variable, "value", variable)


def _restored_saved_models(model):
    """The restored SavedModels of a model made only of SavedModel layers (``--model`` a
    SavedModel or TF Hub module), or None for any other model."""
    from domain_tune.models.loading import SavedModelEncoder

    if not isinstance(model, keras.layers.Layer):  # hub.load(DIR)'s object, a tf.Module, ...
        return None
    layers = [layer for layer in model._flatten_layers(include_self=False) if layer.weights]
    if not layers or not all(isinstance(layer, (SavedModelEncoder, keras.layers.TFSMLayer))
                             for layer in layers):
        return None
    return [_endpoint_object(layer.inner) for layer in layers
            if isinstance(layer, SavedModelEncoder)]


def _endpoint_object(tfsm_layer):
    """What a SavedModel layer calls, with its variables: the layer of the SavedModel that it
    calls (the shared encoder of a siamese model, without the rest of the model or its
    optimizer's slots), else the whole restored SavedModel (its signature or ``__call__``)."""
    from domain_tune.models.loading import _takes_one_string_batch

    restored = tfsm_layer._reloaded_obj
    child = vars(restored).get(tfsm_layer.call_endpoint)
    return child if _takes_one_string_batch(getattr(child, "__call__", None)) else restored


def export_saved_model(model, out_dir, overwrite=False):
    """Write ``model`` (strings -> embeddings) as a SavedModel at ``out_dir``.

    The directory appears only when complete; an existing one is refused
    unless ``overwrite``.
    """
    return atomic_directory(out_dir, overwrite, lambda tmp: save_module(hub_module(model), tmp))


def save_module(module, path):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")], autograph=False)
    def serving_default(inputs):
        return {"outputs": module.__call__(inputs)}

    with no_default_signature():  # the module is the root and serves the encoder itself
        tf.saved_model.save(module, path, signatures={"serving_default": serving_default})
