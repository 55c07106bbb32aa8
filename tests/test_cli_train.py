"""`domain-tune train` and `plot-similarity` through the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from domain_tune.models.loading import load_model
from tests.cli_helpers import error_line, run
from tests.test_export import _reload_in_clean_process, TEXTS

RUN_FILES = {"model.keras", "saved_model", "history.csv", "metrics.json", "similarity.png",
             "README.md", "logs"}


def test_train_tiny_end_to_end(tmp_path, tiny_model_dir, pairs_csv):
    out = tmp_path / "run"
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, "--epochs", 6,
                 "--learning-rate", 3e-3, "--patience", 10, "--no-sts", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(os.listdir(out)) == RUN_FILES
    assert not os.path.exists(f"{out}.partial") and not os.path.exists(f"{out}.lock")
    assert metrics["validation"]["after"]["loss"] < metrics["validation"]["before"]["loss"]
    assert metrics["train_pairs"] == 32 and metrics["val_pairs"] == 8
    assert metrics["sts"] is None and metrics["epochs_run"] == 6
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "mae", "mape", "val_loss", "val_mae", "val_mape"]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    with open(out / "metrics.json") as f:
        assert json.load(f)["data_sha256"] == metrics["data_sha256"]
    card = (out / "README.md").read_text()
    assert metrics["data_sha256"] in card and "validation MSE" in card
    assert (out / "similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the run directory is a --model for every command, and the SavedModel matches it
    tuned = load_model(str(out))
    expected = tuned(tf.constant(TEXTS)).numpy()
    assert metrics["dimensions"] == expected.shape[1]  # the tiny encoder's, not USE-m3's 512
    assert f"a unit vector of {expected.shape[1]} dimensions" in card and "512" not in card
    hub_out, _ = _reload_in_clean_process(out / "saved_model")
    np.testing.assert_allclose(hub_out, expected, atol=1e-5)
    again = run("train", pairs_csv, "--model", out, "--out", tmp_path / "run2", "--epochs", 1,
                "--no-sts", "-q")
    assert again.exit_code == 0, again.output
    texts = tmp_path / "t.txt"
    texts.write_text("nurse\nchef\npilot\n")
    png = tmp_path / "cmp.png"
    plotted = run("plot-similarity", "--model", tiny_model_dir, "--compare", out, "--texts",
                  texts, "--out", png, "--metric", "cosine")
    assert plotted.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_default_out_is_a_timestamped_folder_under_runs(tmp_path, monkeypatch, tiny_model_dir,
                                                       pairs_csv):
    monkeypatch.chdir(tmp_path)
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--epochs", 1, "--no-sts",
                 "--json")
    assert result.exit_code == 0, result.output
    (name,) = os.listdir(tmp_path / "runs")
    assert json.loads(result.stdout)["out"] == os.path.join("runs", name)
    assert set(os.listdir(tmp_path / "runs" / name)) == RUN_FILES


def test_existing_out_is_refused_and_untouched(tmp_path, tiny_model_dir, pairs_csv):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, "--no-sts")
    assert result.exit_code == 2
    assert "already exists" in error_line(result)
    assert os.listdir(out) == ["keep.txt"]


def _write(tmp_path, text, name="p.csv", mode="w"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("base,ref,similarity\n", [], "header but no pairs"),
        ("base,other,similarity\na,b,0.5\n", [], "no column 'ref'"),
        ("base,ref,similarity\na,b,high\n", [], "not a finite number in row 2"),
        ("base,ref,similarity\na,b,nan\n", [], "not a finite number in row 2"),
        ("base,ref,similarity\na,b,1.5\n", [], "outside [0, 1] in row 2"),
        ("base,ref,similarity\na,,0.5\n", [], "empty text in row 2"),
        ("base,ref,similarity\na,b,4\n", ["--score-range", "5", "0"], "upper bound"),
        ("a,b,score\nx,y,4\nz,w,2\n", ["--text-columns", "a"], "two column names"),
        (b"base,ref,similarity\ncaf\xe9,b,0.5\n", [], "not valid UTF-8"),
        ("base,ref,similarity\na,b,0.5\n", ["--epochs", "0"], "--epochs"),
        ("base,ref,similarity\na,b,0.5\n", ["--batch-size", "0"], "--batch-size"),
        ("base,ref,similarity\na,b,0.5\n", ["--validation-split", "1.5"], "--validation-split"),
        ("base,ref,similarity\na,b,0.5\n", ["--learning-rate", "-1"], "--learning-rate"),
        ("base,ref,similarity\na,b,0.5\nc,d,0.5\n", ["--validation-split", "0.9"], "too few"),
        ("base,ref,similarity\na,b,0.5\n", ["--resume"], "no interrupted run"),
    ],
)
def test_train_bad_input(tmp_path, content, extra, message):
    path = _write(tmp_path, content)
    out = tmp_path / "out"
    result = run("train", path, "--out", out, "--no-sts", *extra)
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


def test_train_missing_file_and_directory(tmp_path):
    for target, message in ((tmp_path / "nope.csv", "does not exist"), (tmp_path, "is a directory")):
        result = run("train", target, "--out", tmp_path / "o", "--no-sts")
        assert result.exit_code == 2 and message in error_line(result)


def test_score_range_rescales_and_duplicates_warn(tmp_path, tiny_model_dir):
    path = _write(tmp_path, "base,ref,similarity\n" + "a,b,5\nc,d,0\n" * 6)
    result = run("train", path, "--model", tiny_model_dir, "--out", tmp_path / "o", "--no-sts",
                 "--epochs", 1, "--score-range", 0, 5, "-q")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "duplicate pairs" in result.stderr


def test_concurrent_writer_is_refused(tmp_path, tiny_model_dir, pairs_csv):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run.lock").write_text(str(holder.pid))
        result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, "--no-sts")
        assert result.exit_code == 2
        assert "another domain-tune run" in error_line(result)
    finally:
        holder.kill()
        holder.wait()
    # a stale lock (its process is gone) is taken over
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, "--no-sts",
                 "--epochs", 1, "-q")
    assert result.exit_code == 0, result.output


@pytest.mark.real
def test_real_one_epoch_on_seed_sample(tmp_path, seed_pairs, sts_dir):
    out = tmp_path / "run"
    result = run("train", seed_pairs, "--out", out, "--epochs", 1, "--sts-dir", sts_dir,
                 "--sts-limit", 300, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["train_pairs"] == 78 and metrics["val_pairs"] == 20
    sts = metrics["sts"]
    assert sts["before"]["n"] == 300
    assert abs(sts["after"]["pearson"] - sts["before"]["pearson"]) < 0.02
    tuned = load_model(str(out))
    expected = tuned(tf.constant(TEXTS)).numpy()
    hub_out, sig_out = _reload_in_clean_process(out / "saved_model")
    assert np.abs(hub_out - expected).max() <= 1e-5
    assert np.abs(sig_out - expected).max() <= 1e-5


@pytest.mark.parametrize("strategy", ["semi-frozen", "frozen", "random", "trainable"])
def test_embedding_strategies_with_domain_vocab(tmp_path, tiny_model_dir, pairs_csv, strategy):
    terms = tmp_path / "terms.txt"
    terms.write_text("phlebotomist\nkubernetes\n", encoding="utf-8")
    out = tmp_path / "run"
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, "--epochs", 2,
                 "--learning-rate", 3e-3, "--no-sts", "--json", "--embeddings", strategy,
                 "--add-vocab", terms)
    assert result.exit_code == 0, result.output
    emb = json.loads(result.stdout)["embeddings"]
    assert emb["added_terms"] == ["phlebotomist", "kubernetes"] and emb["new_rows"] == 2
    if strategy in ("semi-frozen", "frozen"):
        assert emb["frozen_rows_changed"] == 0
    # a fresh process (nothing pre-imported) reloads the run and tokenizes the new terms whole
    code = ("from domain_tune.models.loading import load_model; import json, sys; "
            "m = load_model(sys.argv[1]); print(json.dumps(m.tokenizer.tokenize(['kubernetes'])))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [[1, 128001, 2]]
    tuned = load_model(str(out))
    hub_out, _ = _reload_in_clean_process(out / "saved_model")
    np.testing.assert_allclose(hub_out, tuned(tf.constant(TEXTS)).numpy(), atol=1e-5)


def test_freeze_encoder_trains_only_embeddings(tmp_path, tiny_model_dir, pairs_csv):
    out = tmp_path / "run"
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, "--epochs", 1,
                 "--no-sts", "-q", "--freeze-encoder", "--learning-rate", 3e-3)
    assert result.exit_code == 0, result.output
    before, after = load_model(str(tiny_model_dir)), load_model(str(out))
    for a, b in zip(before.backbone.layers, after.backbone.layers):
        same = all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
        assert same == (a.name != "token_embedding"), a.name


def test_bad_vocab_options(tmp_path, pairs_csv):
    result = run("train", pairs_csv, "--out", tmp_path / "o", "--no-sts", "--add-vocab",
                 tmp_path / "missing.txt")
    assert result.exit_code == 2 and "does not exist" in error_line(result)
    result = run("train", pairs_csv, "--out", tmp_path / "o", "--no-sts", "--max-new-pieces", 0,
                 "--add-vocab", "auto")
    assert result.exit_code == 2 and "--max-new-pieces" in error_line(result)


@pytest.mark.parametrize("signum, code", [(2, 130), (15, 143)])
def test_signal_keeps_state_and_resume_finishes(tmp_path, tiny_model_dir, pairs_csv, signum, code):
    import signal
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "domain_tune.cli", "train", str(pairs_csv), "--model",
            str(tiny_model_dir), "--out", str(out), "--no-sts", "--batch-size", "1", "--patience",
            "30", "-q", "--checkpoint-every", "0"]
    proc = subprocess.Popen(args + ["--epochs", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = tmp_path / "run.partial" / "state" / "state.json"
    deadline = time.time() + 600  # a busy machine may take minutes to start TensorFlow
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not out.exists() and (tmp_path / "run.partial").is_dir()
    assert not (tmp_path / "run.lock").exists()
    # another learning rate or other data: refused, the interrupted run kept
    for change, what in ((["--learning-rate", "0.5"], "fit.learning_rate"),
                         (["--loss", "cosent"], "fit.loss")):
        refused = subprocess.run(args + ["--epochs", "2", "--resume", *change],
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2, refused.stderr[-2000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert "--resume" in last and what in last and "Traceback" not in refused.stderr
        assert (tmp_path / "run.partial" / "state" / "state.json").exists() and not out.exists()
    # the same command with --resume (and, to finish quickly, fewer epochs: allowed with a
    # constant learning rate; another --checkpoint-every too: it changes no number)
    resumed = subprocess.run(args + ["--epochs", "2", "--resume", "--json",
                                     "--checkpoint-every", "600"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["epochs_run"] == 2
    assert (out / "model.keras").exists() and not (tmp_path / "run.partial").exists()


def _figures(metrics):
    """What a run measured: everything but the timings, the output path, the options and when."""
    ignored = ("seconds", "fit_seconds", "fit_cpu_seconds", "out", "options", "environment")
    return {k: v for k, v in metrics.items() if k not in ignored}


def test_same_seed_gives_identical_metrics(tmp_path, tiny_model_dir, pairs_csv):
    runs = []
    for name in ("a", "b"):
        result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", tmp_path / name,
                     "--epochs", 3, "--learning-rate", 3e-3, "--no-sts", "--seed", 11, "--json")
        assert result.exit_code == 0, result.output
        with open(tmp_path / name / "metrics.json") as f:
            runs.append(json.load(f))
    assert _figures(runs[0]) == _figures(runs[1])
    assert (tmp_path / "a" / "history.csv").read_text() == (tmp_path / "b" / "history.csv").read_text()


def test_two_runs_at_once_into_different_dirs(tmp_path, tiny_model_dir, pairs_csv):
    procs = [subprocess.Popen([sys.executable, "-m", "domain_tune.cli", "train", str(pairs_csv),
                               "--model", str(tiny_model_dir), "--out", str(tmp_path / name),
                               "--epochs", "2", "--no-sts", "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("one", "two")]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    for name in ("one", "two"):
        assert (tmp_path / name / "model.keras").exists()
        assert not (tmp_path / f"{name}.lock").exists()


def test_in_batch_loss_warns_when_validation_has_no_positive(tmp_path, tiny_model_dir):
    src = tmp_path / "p.csv"
    rows = [f"alt {i},label {i},1.0" for i in range(8)]
    val = tmp_path / "val.csv"
    val.write_text("base,ref,similarity\nalt 1,label 2,0.5\nalt 3,label 4,0.5\n", encoding="utf-8")
    src.write_text("base,ref,similarity\n" + "\n".join(rows) + "\n", encoding="utf-8")
    args = ["train", src, "-m", tiny_model_dir, "--epochs", 1, "--no-sts", "-q",
            "--validation-file", val]
    result = run(*args, "--loss", "in-batch", "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "hold no positive pair" in result.stderr and "--monitor loss" in result.stderr
    for extra in (["--loss", "mse"], ["--loss", "in-batch", "--monitor", "loss"]):
        result = run(*args, *extra, "--out", tmp_path / extra[-1])
        assert result.exit_code == 0 and "hold no positive pair" not in result.stderr


def test_no_validation_split_says_what_early_stopping_watches(tmp_path, tiny_model_dir, pairs_csv):
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", tmp_path / "r",
                 "--epochs", 5, "--validation-split", 0, "--no-sts", "-q", "--json")
    assert result.exit_code == 0, result.output
    assert "early stopping watches the training loss" in result.stderr
    assert json.loads(result.stdout)["val_pairs"] == 0


def test_in_batch_loss_without_positive_training_pairs_is_refused(tmp_path, tiny_model_dir):
    """No pair scores >= 0.99: the in-batch losses would be 0 and train nothing."""
    src = tmp_path / "p.csv"
    src.write_text("base,ref,similarity\n" + "".join(f"a {i},b {i},0.5\n" for i in range(8)),
                   encoding="utf-8")
    result = run("train", src, "-m", tiny_model_dir, "--epochs", 1, "--no-sts", "-q",
                 "--loss", "in-batch-symmetric", "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert "no training pair is positive" in error_line(result)
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


def test_a_run_tuned_from_a_saved_model_stands_on_its_own(tmp_path, tiny_encoder, pairs_csv,
                                                           monkeypatch):
    """model.keras of a run tuned from a SavedModel (given by a relative path) loads after the
    SavedModel is deleted, from another folder, and after the run is moved."""
    import shutil

    from domain_tune.export import export_saved_model

    work = tmp_path / "work"
    work.mkdir()
    export_saved_model(tiny_encoder, work / "exported")
    monkeypatch.chdir(work)
    result = run("train", pairs_csv, "--model", "exported", "--out", "run", "--epochs", 1,
                 "--learning-rate", 1e-2, "--no-sts", "-q")
    assert result.exit_code == 0, result.output
    expected = load_model(str(work / "run"))(tf.constant(TEXTS)).numpy()
    assert not np.allclose(expected, tiny_encoder(tf.constant(TEXTS)).numpy(), atol=1e-4)
    shutil.rmtree(work / "exported")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for path in (work / "run", work / "run" / "model.keras"):
        np.testing.assert_allclose(load_model(str(path))(tf.constant(TEXTS)).numpy(), expected,
                                   atol=1e-6)
    shutil.move(str(work / "run"), str(elsewhere / "moved"))
    np.testing.assert_allclose(load_model("moved")(tf.constant(TEXTS)).numpy(), expected, atol=1e-6)
    # the run's SavedModel holds the tuned weights, once each
    np.testing.assert_allclose(load_model("moved/saved_model")(tf.constant(TEXTS)).numpy(),
                               expected, atol=1e-6)
    assert len(tf.train.list_variables("moved/saved_model/variables/variables")) == 1 + len(
        tiny_encoder.weights)


def test_mini_batch_covering_the_whole_batch_is_a_warning(tmp_path, tiny_model_dir, pairs_csv):
    args = ["train", pairs_csv, "--model", tiny_model_dir, "--epochs", 1, "--no-sts", "-q",
            "--loss", "in-batch", "--batch-size", 4]
    result = run(*args, "--mini-batch-size", 8, "--out", tmp_path / "whole")  # 4 pairs: 8 texts
    assert result.exit_code == 0, result.output
    assert "--mini-batch-size 8 covers a whole batch (8 texts" in result.stderr
    result = run(*args, "--mini-batch-size", 7, "--out", tmp_path / "part")
    assert result.exit_code == 0, result.output
    assert "covers a whole batch" not in result.stderr


def test_scale_of_the_ranking_losses(tmp_path, tiny_model_dir, pairs_csv):
    args = ["train", pairs_csv, "--model", tiny_model_dir, "--epochs", 1, "--no-sts", "-q", "--json"]
    result = run(*args, "--loss", "in-batch", "--scale", 10, "--out", tmp_path / "soft")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["options"]["fit"]["scale"] == 10.0
    assert "--scale" not in result.stderr
    result = run(*args, "--scale", 10, "--out", tmp_path / "mse")  # the default loss has no scale
    assert result.exit_code == 0, result.output
    assert "--scale has no effect with --loss mse; ignored" in result.stderr
