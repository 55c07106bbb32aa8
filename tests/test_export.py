"""SavedModel export: reloadable by TF Hub and plain TensorFlow, without domain_tune."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.export import export_saved_model
from domain_tune.models.loading import load_model

TEXTS = ["data scientist", "infermiere", "Datenanalyst", ""]

CLIENT = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece ops
import tensorflow_hub as hub
assert not any(m.startswith("domain_tune") for m in sys.modules)
texts = tf.constant(json.loads(sys.argv[2]))
hub_out = hub.load(sys.argv[1])(texts).numpy()
sig = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
sig_out = sig(inputs=texts)["outputs"].numpy()
print(json.dumps({"hub": hub_out.tolist(), "signature": sig_out.tolist()}))
"""


def _reload_in_clean_process(path):
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, str(path), json.dumps(TEXTS)],
        capture_output=True, text=True, check=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return np.array(data["hub"]), np.array(data["signature"])


def test_tiny_export_round_trip(tiny_encoder, tmp_path):
    expected = tiny_encoder(tf.constant(TEXTS)).numpy()
    path = export_saved_model(tiny_encoder, tmp_path / "sm")
    hub_out, sig_out = _reload_in_clean_process(path)
    np.testing.assert_allclose(hub_out, expected, atol=1e-6)
    np.testing.assert_allclose(sig_out, expected, atol=1e-6)
    # and domain-tune reads it back as --model, with trainable variables
    reloaded = load_model(str(path))
    np.testing.assert_allclose(reloaded(tf.constant(TEXTS)).numpy(), expected, atol=1e-6)
    assert len(reloaded.trainable_weights) == len(tiny_encoder.trainable_weights)


def test_export_refuses_existing(tiny_encoder, tmp_path):
    with pytest.raises(BadInputError, match="already exists"):
        export_saved_model(tiny_encoder, tmp_path)


@pytest.mark.real
def test_real_export_round_trip(use_m3, tmp_path):
    expected = use_m3(tf.constant(TEXTS)).numpy()
    hub_out, sig_out = _reload_in_clean_process(export_saved_model(use_m3, tmp_path / "sm"))
    np.testing.assert_allclose(hub_out, expected, atol=1e-5)
    np.testing.assert_allclose(sig_out, expected, atol=1e-5)
