"""domain-tune: fine-tune the multilingual Universal Sentence Encoder for a domain.

The heavy parts (TensorFlow, Keras) are imported lazily so that ``import
domain_tune`` and ``domain-tune --help`` stay fast.
"""

from domain_tune import _env  # noqa: F401  (quieten TensorFlow before it loads)

__version__ = "0.1.0"
