"""Make domain-tune's Keras classes known to Keras without importing TensorFlow early.

``keras.saving.load_model("RUN/model.keras")`` needs the classes of the saved
model (the encoder, its tokenizer and layers) registered with Keras, which
happens when their modules are imported; those modules import TensorFlow,
which ``import domain_tune`` must not do.  So the registration waits for
Keras: if Keras and TensorFlow are already imported it happens at once,
otherwise a finder on ``sys.meta_path`` watches their imports and registers
the classes as soon as both have finished (TensorFlow imports Keras part-way
through its own import, and vice versa, so the later of the two triggers it).
"""

import importlib.abc
import importlib.util
import sys
import warnings

WATCHED = ("keras", "tensorflow")


def register():
    """Import the modules that register domain-tune's Keras classes."""
    from domain_tune._env import import_tensorflow

    import_tensorflow()
    import domain_tune.models.loading  # noqa: F401  (encoder, tokenizer, layers, SavedModel layer)
    import domain_tune.training.siamese  # noqa: F401
    import domain_tune.training.optimizers  # noqa: F401


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self.looking = set()
        self.running = set()

    def find_spec(self, name, path=None, target=None):
        if name not in WATCHED or name in self.looking:
            return None
        self.looking.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.looking.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module, run=run, name=name):
            self.running.add(name)
            try:
                run(module)
            finally:
                self.running.discard(name)
            self.maybe_register()

        spec.loader.exec_module = exec_module
        return spec

    def maybe_register(self):
        if self.running or not all(m in sys.modules for m in WATCHED):
            return
        uninstall()
        try:
            register()
        except Exception as e:  # never break the user's own import
            warnings.warn(f"domain-tune could not register its Keras classes ({e}); "
                          "import domain_tune.models.loading before loading a model",
                          ImportWarning, stacklevel=2)


_finder = None


def install():
    """Register now if Keras and TensorFlow are loaded, else when they are."""
    global _finder
    if all(m in sys.modules for m in WATCHED):
        register()
        return
    if _finder is None:
        _finder = _Finder()
        sys.meta_path.insert(0, _finder)


def uninstall():
    global _finder
    if _finder is not None and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    _finder = None
