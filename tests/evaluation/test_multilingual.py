import math

import numpy as np
import pytest

from domain_tune.datasets.sts import STSSplit
from domain_tune.datasets.stsb_multi import MultilingualSplit, load_multilingual
from domain_tune.evaluation.multilingual import (
    evaluate_panel, evaluate_translation, panel_from_embeddings, parallel_pairs, summary_lines,
    translation_accuracy, worst_pair,
)
from tests.datasets.test_stsb_multi import write_dir

C = 1 / math.sqrt(2)
R0 = 1 / math.sqrt(2 - 2 * math.sqrt(2) / 3)  # Pearson of (1, 1/sqrt 2, 0) with (5, 3, 1)

SRC = np.array([[1, 0], [0, 1], [C, C]], float)
TGT = np.array([[1, 0.2], [0.2, 1], [1, 0.05]], float)


def test_translation_accuracy_by_hand():
    # cosines, src -> tgt: a -> a' 0.981, c' 0.999 (miss); b -> b' 0.981 (hit);
    # c -> a' 0.832, b' 0.832, c' 0.742 (miss).  tgt -> src: a' -> a 0.981, c 0.832 (hit);
    # b' -> b 0.981 (hit); c' -> a 0.999, c 0.742 (miss).
    assert translation_accuracy(SRC, TGT) == {"src_to_tgt": 1 / 3, "tgt_to_src": 2 / 3}
    # scaled rows change nothing (cosine)
    assert translation_accuracy(3 * SRC, TGT * 0.5) == {"src_to_tgt": 1 / 3, "tgt_to_src": 2 / 3}


def test_translation_accuracy_counts_identical_texts_as_hits():
    # a' and c' have one text: a finding c' and c finding a' are hits
    acc = translation_accuracy(SRC, TGT, ["a", "b", "c"], ["x", "y", "x"])
    assert acc == {"src_to_tgt": 1.0, "tgt_to_src": 2 / 3}
    # a and c have one text: c' finding a is a hit
    acc = translation_accuracy(SRC, TGT, ["a", "b", "a"], ["x", "y", "z"])
    assert acc == {"src_to_tgt": 1 / 3, "tgt_to_src": 1.0}


def test_translation_accuracy_checks_shapes():
    with pytest.raises(ValueError):
        translation_accuracy(SRC, TGT[:2])
    with pytest.raises(ValueError):
        translation_accuracy(SRC, TGT, ["a"], None)


def test_parallel_pairs_keeps_distinct_pairs_in_order():
    assert parallel_pairs(["a", "b", "a", "a"], ["x", "y", "x", "z"]) == (["a", "b", "a"], ["x", "y", "z"])


def _toy_split():
    def split(s1, s2):
        return STSSplit(s1, s2, [5.0, 3.0, 1.0], "toy")

    data = {"en": split(["e1", "e2", "e3"], ["f1", "f2", "f3"]),
            "de": split(["d1", "d2", "d3"], ["g1", "g2", "g3"])}
    return MultilingualSplit("dev", "en", ["de"], data, "toy")


def test_panel_pearson_by_hand():
    x, y, xy = np.array([1.0, 0]), np.array([0, 1.0]), np.array([1.0, 1])
    emb = {"en": (np.stack([x, x, x]), np.stack([x, xy, y])),   # cos 1, 1/sqrt2, 0
           "de": (np.stack([x, y, x]), np.stack([x, y, xy]))}   # cos 1, 1, 1/sqrt2
    panel = panel_from_embeddings(_toy_split(), emb)
    assert panel["languages"] == ["de"] and panel["n"] == 3 and panel["pivot"] == "en"
    assert panel["mono"]["en"]["pearson"] == pytest.approx(R0, abs=1e-12)
    assert panel["mono"]["en"]["spearman"] == pytest.approx(1.0)
    assert panel["mono"]["de"]["pearson"] == pytest.approx(math.sqrt(3) / 2, abs=1e-12)
    assert panel["mono"]["de"]["spearman"] == pytest.approx(math.sqrt(3) / 2, abs=1e-12)
    # sentence 1 from en (x), sentence 2 from de: cos 1, 0, 1/sqrt2
    assert panel["cross"]["en-de"]["pearson"] == pytest.approx((1 - C) * R0, abs=1e-12)
    assert panel["cross"]["en-de"]["spearman"] == pytest.approx(0.5)
    assert panel["mean"]["mono"] == panel["mono"]["de"]["pearson"]  # the pivot is not averaged
    assert panel["mean"]["cross"] == panel["cross"]["en-de"]["pearson"]
    src = np.concatenate(emb["en"])
    tgt = np.concatenate(emb["de"])
    texts_en = ["e1", "e2", "e3", "f1", "f2", "f3"]
    texts_de = ["d1", "d2", "d3", "g1", "g2", "g3"]
    acc = translation_accuracy(src, tgt, texts_en, texts_de)
    assert panel["translation"] == {"en-de": {"en->de": acc["src_to_tgt"], "de->en": acc["tgt_to_src"]}}
    assert panel["mean"]["translation"] == pytest.approx((acc["src_to_tgt"] + acc["tgt_to_src"]) / 2)
    assert panel["parallel_pairs"] == {"en-de": 6}


def test_evaluate_panel_embeds_each_distinct_sentence_once(tmp_path, tiny_encoder, monkeypatch):
    import json

    import domain_tune.embedding as embedding

    seen = []  # every text that reaches the model
    fn = embedding.inference_fn(tiny_encoder)
    monkeypatch.setattr(embedding, "inference_fn",
                        lambda model: lambda t: seen.extend(t.numpy().tolist()) or fn(t))
    write_dir(tmp_path)
    panel = evaluate_panel(tiny_encoder, str(tmp_path), batch_size=3)
    assert len(seen) == len(set(seen)) == panel["sentences"]
    # 3 languages x 8 sentences, 2 German pairs and 1 Japanese pair with identical sentences
    assert panel["sentences"] == 24 - 1 - 1
    assert panel["languages"] == ["de", "ja"]
    assert set(panel["mono"]) == {"en", "de", "ja"} and set(panel["cross"]) == {"en-de", "en-ja"}
    assert set(panel["translation"]["en-ja"]) == {"en->ja", "ja->en"}
    assert set(panel["mean"]) == {"mono", "mono_spearman", "cross", "cross_spearman", "translation"}
    json.dumps(panel)  # JSON-able
    again = evaluate_panel(tiny_encoder, load_multilingual(str(tmp_path), languages="ja"))
    assert again["languages"] == ["ja"]
    assert again["cross"]["en-ja"] == pytest.approx(panel["cross"]["en-ja"], abs=1e-6)


def test_evaluate_language_matches_the_panel(tmp_path, tiny_encoder):
    from domain_tune.evaluation.multilingual import evaluate_language

    write_dir(tmp_path)
    panel = evaluate_panel(tiny_encoder, str(tmp_path))
    cross = evaluate_language(tiny_encoder, "en-ja", str(tmp_path))
    mono = evaluate_language(tiny_encoder, "de", str(tmp_path), limit=3)
    assert cross["language"] == "en-ja" and cross["n"] == 4
    assert cross["pearson"] == pytest.approx(panel["cross"]["en-ja"]["pearson"], abs=1e-6)
    assert mono["n"] == 3


def test_evaluate_translation_on_tiny_model(tiny_encoder):
    r = evaluate_translation(tiny_encoder, ["a cat", "a dog", "a cat"], ["un chat", "un chien", "un chat"],
                             names=("en", "fr"))
    assert r["n"] == 2 and set(r) == {"n", "en->fr", "fr->en"}


def _panel(cross):
    return {"split": "dev", "n": 3, "pivot": "en", "languages": [p[3:] for p in cross],
            "cross": {p: {"pearson": v} for p, v in cross.items()},
            "mean": {"mono": 0.8, "cross": float(np.mean(list(cross.values()))), "translation": 0.9}}


def test_worst_pair_and_summary():
    before, after = _panel({"en-de": 0.78, "en-ja": 0.76}), _panel({"en-de": 0.775, "en-ja": 0.74})
    assert worst_pair(before, after) == ("en-ja", 0.76, 0.74)
    lines = summary_lines(before, after)
    assert lines[-1] == "  worst cross-lingual pair en-ja: 0.7600 -> 0.7400 (-0.0200)"
    assert "cross mean 0.7700 -> 0.7575 (-0.0125)" in lines[1]
    assert summary_lines(before)[0].startswith("Multilingual STS (dev, 3 pairs, en + de,ja): mono")


@pytest.mark.real
def test_real_panel_on_a_subset(use_m3):
    from tests.conftest import shared_path

    folder = shared_path("stsb-multi-mt")
    panel = evaluate_panel(use_m3, str(folder), "dev", languages="de,ja", limit=300)
    assert panel["n"] == 300 and panel["languages"] == ["de", "ja"]
    for lang in ("en", "de", "ja"):
        assert 0.7 < panel["mono"][lang]["pearson"] < 0.95
    for pair in ("en-de", "en-ja"):
        assert 0.65 < panel["cross"][pair]["pearson"] < 0.95
        assert all(0.75 < acc <= 1.0 for acc in panel["translation"][pair].values())
    assert panel["mean"]["cross"] < panel["mono"]["en"]["pearson"]
