"""Export an encoder as a TF Hub-style SavedModel.

The SavedModel maps a batch of strings to embeddings, like the TF Hub module
of USE-multilingual: ``hub.load(dir)(texts)`` or
``tf.saved_model.load(dir).signatures["serving_default"](inputs=texts)["outputs"]``
work with only ``tensorflow`` and ``tensorflow_text`` imported.  It also
carries ``variables`` and ``trainable_variables`` so that
``hub.KerasLayer(dir, trainable=True)`` can fine-tune it further.
"""

import tensorflow as tf

from domain_tune.outputs import atomic_directory


def hub_module(model):
    """A trackable object in the TF Hub reusable-SavedModel layout.

    ``__call__`` on a string batch, ``variables``, ``trainable_variables`` and
    ``regularization_losses``; the model (with its tokenizer resource) is a
    child so that every variable and asset is saved.
    """
    obj = tf.__internal__.tracking.AutoTrackable()
    obj.model = model
    obj.variables = list(model.variables)
    obj.trainable_variables = list(model.trainable_variables)
    obj.regularization_losses = []

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def call(inputs):
        return model(inputs, training=False)

    obj.__call__ = call
    return obj


def export_saved_model(model, out_dir, overwrite=False):
    """Write ``model`` (strings -> embeddings) as a SavedModel at ``out_dir``.

    The directory appears only when complete; an existing one is refused
    unless ``overwrite``.
    """
    return atomic_directory(out_dir, overwrite, lambda tmp: save_module(hub_module(model), tmp))


def save_module(module, path):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def serving_default(inputs):
        return {"outputs": module.__call__(inputs)}

    tf.saved_model.save(module, path, signatures={"serving_default": serving_default})
