"""domain-tune: fine-tune the multilingual Universal Sentence Encoder for a domain.

The public API (each function documented where it is defined,
:mod:`domain_tune.api`)::

    import domain_tune as dt

    model = dt.load_model("use-m3")                 # Keras 3: strings -> 512-d embeddings
    vectors = dt.encode(model, ["data scientist", "scienziato dei dati"])
    run = dt.train("pairs.csv", "runs/my-domain", epochs=5, sts_dir="stsbenchmark")
    dt.evaluate_sts(run.path, sts_dir="stsbenchmark")
    dt.plot_similarity("use-m3", run.path)          # a matplotlib Figure
    dt.match(run.path, ["data wizard"], ["data scientist", "nurse"], top_k=1)

The heavy parts (TensorFlow, Keras) are imported lazily, by the first function
that needs them, so that ``import domain_tune`` and ``domain-tune --help`` stay
fast.  Once Keras is imported, domain-tune's Keras classes are registered, so
``keras.saving.load_model("RUN/model.keras")`` works after ``import domain_tune``.
"""

import sys
import types

from domain_tune import _env  # noqa: F401  (quieten TensorFlow before it loads)
from domain_tune import _keras_hook
from domain_tune.api import (
    TrainResult, encode, evaluate_retrieval, evaluate_sts, export, index, interpolate, load_model,
    match, match_file, plot_similarity, read_metrics, train, train_options,
)
from domain_tune.errors import BadInputError, DomainTuneWarning

__version__ = "0.1.0"
__all__ = [
    "load_model", "encode", "train", "train_options", "TrainResult", "evaluate_sts",
    "evaluate_retrieval", "match", "match_file", "index", "plot_similarity", "export", "interpolate", "read_metrics",
    "BadInputError", "DomainTuneWarning", "__version__",
]

_keras_hook.install()


class _Package(types.ModuleType):
    """The package keeps its public functions when a submodule of the same name is imported.

    ``domain_tune.export`` is the function; importing the module
    ``domain_tune/export.py`` (``from domain_tune.export import ...``, as the
    library does) would otherwise replace the attribute with the module.
    The module stays reachable as ``sys.modules["domain_tune.export"]``.
    """

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and callable(self.__dict__.get(name)):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
