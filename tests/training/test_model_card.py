"""The model card of a run, rendered from metrics.json alone."""

import copy
import json
import pathlib

from domain_tune.training.model_card import data_attribution, render, title

METRICS = json.loads((pathlib.Path(__file__).parent / "model_card_metrics.json").read_text())


def test_card_is_titled_after_model_and_data_and_says_how_to_use_it():
    card = render(METRICS)
    first = card.splitlines()[0]
    assert first == "# Universal Sentence Encoder multilingual v3, fine-tuned on seed-sample/training_data.csv"
    assert first == "# " + title(METRICS) and "article" not in first  # not the folder name
    for usage in ("--model runs/article", 'dt.load_model("runs/article")',
                  'keras.saving.load_model("runs/article/model.keras")',
                  'hub.load("runs/article/saved_model")', "import tensorflow_hub as hub, tensorflow_text"):
        assert usage in card, usage


def test_card_has_no_python_reprs():
    card = render(METRICS)
    for bad in ("('", "None", "{'", "True", "False", "[0.0, 1.0]"):
        assert bad not in card, bad


def test_evaluation_rows_before_after_and_change():
    card = render(METRICS)
    assert "| STS-B dev Pearson | 0.8309 | 0.8313 | +0.0004 |" in card
    assert "| translation retrieval, mean accuracy | 0.9500 | 0.9400 | -0.0100 |" in card
    assert "| de | 0.7900 -> 0.8000 (+0.0100) | 0.7700 -> 0.7800 (+0.0100) |" in card
    assert "Mean distillation loss per epoch: 0.00120, 0.00090." in card
    assert ("multilingual distillation: 100 parallel sentences (`par.csv`, columns `en`, `de`), "
            "objective `embedding`, teacher `base`, weight 1, 16 sentences per step.") in card
    plain = copy.deepcopy(METRICS)
    del plain["multilingual"], plain["alignment"]
    plain["retrieval"] = {"before": {"top1": 0.5, "top5": 0.8, "top10": 0.9, "mrr": 0.6},
                          "after": {"top1": 0.6, "top5": 0.85, "top10": 0.95, "mrr": 0.7}}
    card = render(plain)
    assert "multilingual STS-B" not in card and "alignment" not in card.lower()
    assert "| retrieval top-1 | 0.5000 | 0.6000 | +0.1000 |" in card


def test_options_table_and_the_command_that_reproduces_the_run():
    m = copy.deepcopy(METRICS)
    m["options"]["fit"].update(epochs=5, learning_rate=1e-4, loss="in-batch")
    m["options"]["score_range"] = [0.0, 5.0]
    card = render(m)
    assert "| `--epochs` | 5 |" in card and "| `--batch-size` | 8 (default) |" in card
    assert "| `--loss` | in-batch |" in card and "other options | their defaults" in card
    assert "`--align`" not in card  # trained without alignment: nothing to show
    assert ("domain-tune train ../shared/data/seed-sample/training_data.csv --out runs/article "
            "--score-range 0 5 --epochs 5 --learning-rate 0.0001 --loss in-batch "
            "--sts-dir ../shared/data/stsbenchmark") in card
    assert "| score column and range | `similarity`, 0 to 5 (rescaled to 0 to 1) |" in card


def test_licence_and_versions():
    card = render(METRICS)
    assert "| licence and attribution | ESCO © European Union |" in card
    assert "- Training data: ESCO © European Union." in card
    assert "STS benchmark (Cer et al. 2017; scores CC BY-SA 4.0)" in card
    assert "tensorflow 2.21.0" in card and "keras 3.15.1" in card


def test_attribution_is_read_from_a_readme_beside_the_pairs(tmp_path):
    (tmp_path / "README.md").write_text(
        "# Pairs\n\nDerived from ESCO v1.0 (ESCO © European Union), by domain-tune.\n")
    assert data_attribution(tmp_path / "train.csv") == "ESCO © European Union"
    (tmp_path / "README.md").write_text("Scores under the CC BY-SA 4.0 licence.\n")
    assert data_attribution(tmp_path / "train.csv") == "Scores under the CC BY-SA 4.0 licence"
    assert data_attribution(tmp_path / "absent" / "train.csv") is None


def test_vector_size_comes_from_the_run():
    m = copy.deepcopy(METRICS)
    m["dimensions"] = 8
    card = render(m)
    assert "a unit vector of 8 dimensions" in card and "# (2, 8)" in card and "512" not in card
    del m["dimensions"]  # metrics of runs made before the key existed: no number claimed
    card = render(m)
    assert "maps a text to a unit vector, and" in card and "(2, dimensions)" in card

