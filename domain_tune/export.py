"""Export an encoder as a TF Hub-style SavedModel, and save it as a ``.keras`` file.

The SavedModel maps a batch of strings to embeddings, like the TF Hub module
of USE-multilingual: ``hub.load(dir)(texts)`` or
``tf.saved_model.load(dir).signatures["serving_default"](inputs=texts)["outputs"]``
work with only ``tensorflow`` and ``tensorflow_text`` imported.  It also
carries ``variables`` and ``trainable_variables`` so that
``hub.KerasLayer(dir, trainable=True)`` can fine-tune it further.
"""

import concurrent.futures
import contextlib
import os
import shutil
import tempfile
from unittest import mock

import keras
import tensorflow as tf
from keras.src.saving import saving_lib

from domain_tune.embedding import MODEL_CONTRACT, inference_fn
from domain_tune.errors import BadInputError
from domain_tune.models.layers import share_on_read
from domain_tune.models.loading import KERAS_FILE, saved_models_beside
from domain_tune.models.sentence_encoder import no_default_signature
from domain_tune.outputs import atomic_directory


def save_keras(model, path):
    """``model.save(path)`` (a ``.keras`` file) with the weights staged on disk.

    Keras builds the weights file in memory first (an HDF5 image in a
    ``BytesIO``, then copied into the zip) unless it judges memory short; that
    is 2-3 transient copies of the 262 MB token table.  Telling it memory is
    short makes it stage the file on disk beside ``path``, the same file format,
    which zipfile then copies into the archive (here in 16 MiB chunks).
    A table that was read sparsely is read without a copy of its own
    (:func:`~domain_tune.models.layers.share_on_read`).
    """
    share_on_read(model.variables)
    staged = _StagingFiles()
    try:
        with mock.patch.object(saving_lib, "is_memory_sufficient", lambda model: False), \
                mock.patch.object(saving_lib, "tempfile", staged), \
                mock.patch.object(shutil, "copyfileobj", _copy_in_big_chunks):
            model.save(path)
    finally:
        staged.close()


class _StagingFiles:
    """``tempfile`` as Keras' saving sees it, keeping the temporary files it makes.

    Keras closes (and so deletes) its staged weights file only when the save
    succeeds; after a failed write (a full disk) the open file outlived the
    save, and was deleted when collected at exit, after the output folder it
    was in had been removed: Python printed the ``FileNotFoundError`` as an
    ignored exception with its traceback.  :meth:`close` closes them at once.
    """

    def __init__(self):
        self.files = []

    def __getattr__(self, name):
        return getattr(tempfile, name)

    def NamedTemporaryFile(self, *args, **kwargs):  # noqa: N802 (tempfile's name)
        f = tempfile.NamedTemporaryFile(*args, **kwargs)
        self.files.append(f)
        return f

    def close(self):
        for f in self.files:
            with contextlib.suppress(OSError):
                f.close()
        self.files.clear()


# zipfile copies a file into an archive with ``shutil.copyfileobj(src, dest, 8 KiB)``: the
# staged weights file of USE-m3 (275 MB) took 34,000 reads and writes through Python.
COPY_CHUNK = 16 * 1024 * 1024
_copyfileobj = shutil.copyfileobj


def _copy_in_big_chunks(src, dst, length=0):
    """``shutil.copyfileobj`` with chunks of at least :data:`COPY_CHUNK` bytes."""
    return _copyfileobj(src, dst, max(length or 0, COPY_CHUNK))


def save_model_dir(model, directory, alongside=None):
    """``directory/model.keras`` and ``directory/saved_model/``: what ``--model DIR`` loads.

    A model tuned from a SavedModel names ``directory/saved_model/`` in its
    ``.keras`` file, not the SavedModel it was loaded from, so the directory
    stands on its own.

    ``alongside``: a callable run on a worker thread while the ``.keras`` file
    is written (mostly I/O, which leaves the interpreter free), such as drawing
    a plot; it is waited for, and its exception raised, before the SavedModel
    export.  It must not touch the model.  Nothing runs beside the export: it
    walks the model's attributes inside ``warnings.catch_warnings``, which is
    not thread-safe (a plot enters it too, to gather missing-glyph warnings).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="save-alongside") as pool:
        side = pool.submit(alongside) if alongside is not None else None
        with saved_models_beside(model, "saved_model"):
            save_keras(model, os.path.join(directory, KERAS_FILE))
        if side is not None:
            side.result()
    export_saved_model(model, os.path.join(directory, "saved_model"))


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
    obj.__call__ = inference_fn(model)
    if not isinstance(model, keras.layers.Layer):
        # a callable of unknown make: one row per text, before a SavedModel is written
        probe = ["a", "b c"]
        rows = obj.__call__(tf.constant(probe)).shape[0]
        if rows != len(probe):
            raise BadInputError(f"the model returned {rows} rows for {len(probe)} texts; "
                                f"{MODEL_CONTRACT}")
    return obj


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
