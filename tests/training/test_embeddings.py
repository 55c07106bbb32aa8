"""Embedding strategies in training: what semi-frozen + --freeze-encoder guarantees."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.datasets.pairs import Pairs
from domain_tune.training.embeddings import EmbeddingOptions, prepare_encoder
from domain_tune.training.fit import FitOptions, compile_siamese, fit
from tests.conftest import make_tiny_encoder

TERMS = ["kubernetes", "terraform"]
OLD_TEXTS = ["data analyst", "senior nurse", "chef", "a pilot and a baker"]
NEW_TEXTS = ["kubernetes engineer", "terraform developer"]


def _domain_pairs(n=32):
    rng = np.random.default_rng(0)
    jobs = ["engineer", "developer", "administrator", "architect"]
    base, ref, sim = [], [], []
    for k in range(n):
        term = TERMS[k % 2]
        base.append(f"{term} {jobs[rng.integers(len(jobs))]}")
        ref.append(f"{TERMS[rng.integers(2)]} specialist" if k % 3 else "senior nurse")
        sim.append(1.0 if term in ref[-1] else 0.3)
    return Pairs(base, ref, np.array(sim, np.float32), "domain.csv")


@pytest.mark.parametrize("strategy, optimizer", [
    ("semi-frozen", "adam"), ("semi-frozen", "lazy-adam"),
    ("trainable", "lazy-adam"),  # the control: the same training moves the old texts
])
def test_semi_frozen_with_frozen_encoder_keeps_pretrained_texts_bit_identical(
    sp_model_path, tmp_path, strategy, optimizer
):
    base = make_tiny_encoder(sp_model_path, seed=3)
    terms = tmp_path / "terms.txt"
    terms.write_text("".join(t + "\n" for t in TERMS), encoding="utf-8")
    before_old = base(tf.constant(OLD_TEXTS)).numpy()
    encoder, added = prepare_encoder(
        base, EmbeddingOptions(strategy=strategy, add_vocab=str(terms), freeze_encoder=True)
    )
    assert [a.term for a in added] == TERMS
    # the texts of the index use pretrained pieces only; the domain texts use the new ones
    new_ids = {a.id for a in added}
    assert not new_ids.intersection(i for row in encoder.tokenizer.tokenize(OLD_TEXTS) for i in row)
    assert all(new_ids.intersection(row) for row in encoder.tokenizer.tokenize(NEW_TEXTS))
    before_new = encoder(tf.constant(NEW_TEXTS)).numpy()

    pairs = _domain_pairs()
    options = FitOptions(epochs=3, batch_size=8, learning_rate=3e-2, patience=3, seed=1,
                         optimizer=optimizer)
    siamese = compile_siamese(encoder, options, len(pairs))
    state = fit(siamese, pairs, None, options, str(tmp_path / "state"), verbose=0)
    assert len(state.history) == 3

    after_old = encoder(tf.constant(OLD_TEXTS)).numpy()
    after_new = encoder(tf.constant(NEW_TEXTS)).numpy()
    if strategy == "semi-frozen":
        assert np.array_equal(after_old, before_old)  # bit-identical: an old index stays valid
    else:
        assert not np.allclose(after_old, before_old, atol=1e-4)
    assert not np.allclose(after_new, before_new, atol=1e-4)  # the new rows did train
