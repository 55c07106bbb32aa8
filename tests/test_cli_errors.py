"""Bad input across every command: one line on stderr, exit code 2, nothing written.

Each case names the files it needs (made in a fresh folder), the command line
(``{d}`` is that folder, ``{model}`` a tiny model directory) and a phrase the
error line must contain.  After the command, the folder must hold exactly
what it held before, byte for byte.
"""

import json
import os
import shutil

import pytest

from domain_tune.errors import BadInputError
from tests.cli_helpers import error_line, run

PAIRS = "base,ref,similarity\na,b,0.5\nc,d,1.0\ne,f,0.5\n"
TEXTS = "data scientist\nnurse\n"
STS_LINE = "g\tf\t2012\t1\t4.0\tA man.\tA woman.\n"
QUERIES = "query,conceptUri\nnurse,u1\n"
CORPUS = "label,conceptUri\nnurse,u1\nchef,u2\n"

CASES = [
    # train
    ("train-missing", {}, "train {d}/nope.csv --out {d}/o --no-sts", "does not exist"),
    ("train-dir", {}, "train {d} --out {d}/o --no-sts", "is a directory"),
    ("train-empty", {"p.csv": ""}, "train {d}/p.csv --out {d}/o --no-sts", "is empty"),
    ("train-header", {"p.csv": "base,ref,similarity\n"}, "train {d}/p.csv --out {d}/o --no-sts",
     "header but no pairs"),
    ("train-column", {"p.csv": "base,reference,similarity\na,b,1\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "no column 'ref'"),
    ("train-text-number", {"p.csv": "base,ref,similarity\na,b,one\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "not a finite number"),
    ("train-nan", {"p.csv": "base,ref,similarity\na,b,NaN\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "not a finite number"),
    ("train-percent", {"p.csv": "base,ref,similarity\na,b,75%\nc,d,\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "not a finite number in rows 2, 3 (first: '75%')"),
    ("train-empty-score", {"p.csv": "base,ref,similarity\na,b,0.5\nc,d,\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "in row 3 (first: an empty cell)"),
    ("train-range", {"p.csv": "base,ref,similarity\na,b,-0.1\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "outside [0, 1]"),
    ("train-one-pair", {"p.csv": "base,ref,similarity\na,b,0.5\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "p.csv: 1 pair is too few to hold out a validation"),
    ("train-empty-text", {"p.csv": "base,ref,similarity\n\"  \",b,0.5\n"},
     "train {d}/p.csv --out {d}/o --no-sts", "empty text"),
    ("train-latin1", {"p.csv": "base,ref,similarity\ncaf\xe9,b,0.5\n".encode("latin-1")},
     "train {d}/p.csv --out {d}/o --no-sts", "not valid UTF-8"),
    ("train-binary", {"p.csv": b"\x89PNG\r\n\x1a\n\x00\x00"},
     "train {d}/p.csv --out {d}/o --no-sts", "binary file"),
    ("train-epochs", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts --epochs 0", "--epochs"),
    ("train-batch", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts --batch-size 0",
     "--batch-size"),
    ("train-split", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts --validation-split 1.5",
     "--validation-split"),
    ("train-lr", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts --learning-rate -1",
     "--learning-rate"),
    ("train-scale", {"p.csv": PAIRS},
     "train {d}/p.csv --out {d}/o --no-sts --loss in-batch --scale 0", "--scale"),
    ("train-cpu-replicas", {"p.csv": PAIRS},
     "train {d}/p.csv --out {d}/o --no-sts --cpu-replicas 2", "needs --distribute mirrored"),
    ("train-exists", {"p.csv": PAIRS, "o/keep": "x"}, "train {d}/p.csv --out {d}/o --no-sts",
     "already exists"),
    ("train-out-parent", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/missing/o --no-sts",
     "does not exist"),
    ("train-unwritable", {"p.csv": PAIRS, "file": "x"}, "train {d}/p.csv --out {d}/file/o --no-sts",
     "cannot write"),
    ("train-unknown-model", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts -m nothing",
     "unknown model"),
    ("train-corrupt-model", {"p.csv": PAIRS, "bad/model.keras": b"PK\x03\x04 not a zip"},
     "train {d}/p.csv --out {d}/o --no-sts -m {d}/bad", "cannot load Keras model"),
    ("train-sts-dir", {"p.csv": PAIRS, "sts/readme.txt": "x"},
     "train {d}/p.csv --out {d}/o --sts-dir {d}/sts", "has no sts-dev.csv"),
    ("train-val-file", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts --validation-file "
     "{d}/v.csv", "does not exist"),
    # embed
    ("embed-missing", {}, "embed {d}/t.txt -o {d}/e.npy", "does not exist"),
    ("embed-empty", {"t.txt": ""}, "embed {d}/t.txt -o {d}/e.npy", "is empty"),
    ("embed-column", {"t.csv": "title\nx\n"}, "embed {d}/t.csv -c name -o {d}/e.npy", "no column 'name'"),
    ("embed-format", {"t.txt": TEXTS}, "embed {d}/t.txt -o {d}/e.parquet", "unknown output format"),
    ("embed-exists", {"t.txt": TEXTS, "e.npy": "x"}, "embed {d}/t.txt -o {d}/e.npy", "already exists"),
    ("embed-model-dir", {"t.txt": TEXTS, "m/readme": "x"}, "embed {d}/t.txt -o {d}/e.npy -m {d}/m",
     "neither model.keras nor saved_model.pb"),
    # eval-sts
    ("sts-dir", {"sts/readme.txt": "x"}, "eval-sts --sts-dir {d}/sts", "has no sts-dev.csv"),
    ("sts-malformed", {"sts/sts-dev.csv": STS_LINE + "only\ttwo\n"}, "eval-sts --sts-dir {d}/sts",
     "sts-dev.csv:2: expected at least 7"),
    ("sts-split", {}, "eval-sts --split validation", "--split"),
    ("sts-file-header", {"s.csv": "sentence1,sentence2,score\na,b,1\nc,d,2\n"},
     "eval-sts --file {d}/s.csv -m {model}", "s.csv:1: score 'score' is not a number (the format "
     "has no header line"),
    # eval-retrieval
    ("retrieval-missing", {"c.csv": CORPUS},
     "eval-retrieval --queries {d}/q.csv --corpus {d}/c.csv -m {model}", "does not exist"),
    ("retrieval-column", {"q.csv": "text,conceptUri\nnurse,u1\n", "c.csv": CORPUS},
     "eval-retrieval --queries {d}/q.csv --corpus {d}/c.csv -m {model}", "no column 'query'"),
    ("retrieval-corpus-of-one", {"q.csv": QUERIES, "c.csv": "label,conceptUri\nnurse,u1\nRN,u1\n"},
     "eval-retrieval --queries {d}/q.csv --corpus {d}/c.csv -m {model}",
     "has 1 distinct conceptUri; ranking needs at least 2"),
    ("retrieval-tune-on-missing", {"q.csv": QUERIES, "c.csv": CORPUS},
     "eval-retrieval --queries {d}/q.csv --corpus {d}/c.csv --tune-on {d}/v.csv -m {model}",
     "--tune-on queries"),
    # pairs
    ("pairs-missing", {}, "pairs esco {d}/occ.csv --out {d}/p", "does not exist"),
    ("pairs-header", {"occ.csv": "conceptUri,iscoGroup,preferredLabel,altLabels\n"},
     "pairs esco {d}/occ.csv --out {d}/p", "header but no rows"),
    ("pairs-holdout", {"occ.csv": "conceptUri,iscoGroup,preferredLabel,altLabels\nu,1,a,b\n"},
     "pairs esco {d}/occ.csv --out {d}/p --holdout 1.5", "--holdout"),
    # plot-similarity
    ("plot-png", {}, "plot-similarity --out {d}/s.jpg -m {model}", "PNG"),
    ("plot-texts-missing", {}, "plot-similarity --texts {d}/no.txt --out {d}/s.png -m {model}",
     "--texts"),
    ("plot-texts", {"t.txt": "one\n"}, "plot-similarity --texts {d}/t.txt --out {d}/s.png -m {model}",
     "at least 2"),
    ("plot-compare", {}, "plot-similarity --compare nothing --out {d}/s.png -m {model}", "unknown model"),
    # export
    ("export-exists", {"x/keep": "x"}, "export --out {d}/x -m {model}", "already exists"),
    ("export-model", {}, "export --out {d}/x -m nothing", "unknown model"),
    ("export-onto-file", {"x": "mine"}, "export --out {d}/x -m {model} --overwrite", "is a file"),
    ("embed-onto-dir", {"t.txt": TEXTS, "e.npy/keep": "x"},
     "embed {d}/t.txt --out {d}/e.npy -m {model} --overwrite", "is a directory"),
    ("embed-onto-dir-no-overwrite", {"t.txt": TEXTS, "e.npy/keep": "x"},
     "embed {d}/t.txt --out {d}/e.npy -m {model}", "is a directory"),
    ("export-cwd", {}, "export --out . --overwrite -m {model}", "is the current folder"),
    ("export-onto-its-model", {}, "export -m {model} --out {model} --overwrite", "is the input"),
    ("interpolate-onto-its-model", {},
     "interpolate -m {model}/model.keras --base {d}/other --out {model} --overwrite",
     "holds the input"),
    ("train-parent-of-cwd", {"p.csv": PAIRS}, "train {d}/p.csv --out .. --overwrite --no-sts",
     "holds it"),
    ("embed-tilde", {"t.txt": TEXTS}, "embed {d}/t.txt --out ~/e.npy -m {model}", "not expanded"),
    ("embed-onto-input", {"t.csv": "title\nnurse\nchef\n"},
     "embed {d}/t.csv --out {d}/./t.csv --overwrite -m {model}", "is the input"),
    # interpolate
    ("interpolate-model", {}, "interpolate -m {d}/nothing --base {model} --out {d}/x",
     "unknown model"),
    ("interpolate-alpha", {}, "interpolate -m {d}/m --base {model} --alpha 1.5 --out {d}/x",
     "--alpha"),
    ("interpolate-same", {}, "interpolate -m {model} --base {model} --out {d}/x",
     "would change nothing"),
    ("interpolate-architecture", {}, "interpolate -m {model} --out {d}/x", "token tables differ"),
    ("interpolate-base-csv", {"p.csv": PAIRS}, "interpolate -m {model} --base {d}/p.csv --out {d}/x",
     "Error: --base "),
    ("plot-compare-csv", {"p.csv": PAIRS},
     "plot-similarity --compare {d}/p.csv --out {d}/s.png -m {model}", "Error: --compare "),
    ("interpolate-pairs-file", {"p.csv": PAIRS}, "interpolate -m {d}/p.csv --base {model} --out {d}/x",
     "must be a .keras"),
    ("parallel-missing-dir", {}, "parallel-sentences {d}/nope --out {d}/par.csv",
     "nope: not a directory (the multilingual STS benchmark's folder)"),
    # --overwrite of an --out that is or holds an input replaced the user's data
    ("train-out-holds-pairs", {"o/p.csv": PAIRS},
     "train {d}/o/p.csv --out {d}/o --overwrite --no-sts -m {model}", "holds the input"),
    ("train-out-holds-validation", {"p.csv": PAIRS, "o/v.csv": PAIRS},
     "train {d}/p.csv --out {d}/o --overwrite --no-sts --validation-file {d}/o/v.csv -m {model}",
     "holds the input"),
    ("pairs-out-holds-taxonomy", {"t/t.csv": "id,label,syn\n1,nurse,RN\n2,chef,cook\n"},
     "pairs taxonomy {d}/t/t.csv --id-column id --label-column label --synonyms-column syn "
     "--out {d}/t --overwrite", "holds the input"),
    ("mine-onto-its-input", {"p.csv": PAIRS},
     "mine-negatives {d}/p.csv --out {d}/p.csv --overwrite -m {model}", "is the input"),
    ("parallel-onto-its-input", {"m/stsb-en-dev.csv": "a,b,1\n", "m/stsb-de-dev.csv": "c,d,1\n"},
     "parallel-sentences {d}/m --split dev --out {d}/m/stsb-de-dev.csv --overwrite",
     "is the input"),
    # values that were accepted and then trained on nothing, or failed inside a library
    ("train-score-range-inf", {"p.csv": PAIRS},
     "train {d}/p.csv --out {d}/o --no-sts --score-range 0 inf", "both bounds must be finite"),
    ("train-seed-negative", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/o --no-sts --seed -1",
     "--seed must be 0 or more (got -1)"),
    ("train-epochs-huge", {"p.csv": PAIRS},
     "train {d}/p.csv --out {d}/o --no-sts --epochs 100000000000 --validation-split 0",
     "--epochs 100,000,000,000 with 3 training pairs"),
    ("mine-seed-negative", {"p.csv": PAIRS},
     "mine-negatives {d}/p.csv --out {d}/m.csv --seed -1 -m {model}",
     "--seed must be 0 or more (got -1)"),
    ("mine-score-range-inf", {"p.csv": PAIRS},
     "mine-negatives {d}/p.csv --out {d}/m.csv --score-range -inf 1 -m {model}",
     "both bounds must be finite"),
    ("translation-one-pair", {"par.csv": "en,de\nnurse,Krankenschwester\nnurse,Krankenschwester\n"},
     "eval-translation --parallel {d}/par.csv -m {model}", "at least 2 distinct parallel pairs"),
    ("embed-model-not-a-zip", {"t.txt": TEXTS, "m.keras": b"\x07" * 5000},
     "embed {d}/t.txt --out {d}/o.npy -m {d}/m.keras", "not a .keras file (those are zip archives)"),
    ("train-nothing-to-train", {"p.csv": PAIRS},
     "train {d}/p.csv --out {d}/o --no-sts -m {model} --embeddings frozen --freeze-encoder",
     "--freeze-encoder with --embeddings frozen leaves nothing to train"),
    # a name the file system refuses once the temporary suffix is added
    ("embed-out-name-too-long", {"t.txt": TEXTS}, "embed {d}/t.txt --out {d}/" + "b" * 240
     + ".npy -m {model}", "is too long (244 bytes; at most"),
    ("train-out-name-too-long", {"p.csv": PAIRS}, "train {d}/p.csv --out {d}/" + "b" * 250
     + " --no-sts -m {model}", "is too long (250 bytes; at most"),
    ("train-contrastive-one-pair", {"p.csv": PAIRS, "par.csv": "en,de\nnurse,Krankenschwester\n"},
     "train {d}/p.csv --out {d}/o --no-sts -m {model} --parallel {d}/par.csv --align-loss "
     "contrastive", "needs at least 2 distinct pairs (got 1)"),
]


def _snapshot(folder):
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            out[rel] = None if os.path.isdir(path) else open(path, "rb").read()
    return out


@pytest.mark.parametrize("name, files, command, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, tiny_model_dir, name, files, command, message):
    folder = tmp_path / "case"
    folder.mkdir()
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = _snapshot(folder)
    args = command.format(d=folder, model=tiny_model_dir).split()
    result = run(*args)
    assert result.exit_code == 2, (name, result.output)
    line = error_line(result)
    assert message in line, line
    assert _snapshot(folder) == before  # no new, changed or half-written file


def test_there_are_enough_cases():
    assert len(CASES) >= 20
    commands = {c[2].split()[0] for c in CASES}
    assert commands == {"train", "embed", "eval-sts", "eval-retrieval", "pairs", "plot-similarity",
                        "export", "interpolate", "parallel-sentences", "mine-negatives",
                        "eval-translation"}


def test_resume_without_a_run_is_refused_before_reading_anything(tmp_path, monkeypatch):
    (tmp_path / "p.csv").write_text(PAIRS)
    monkeypatch.chdir(tmp_path)
    result = run("train", "p.csv", "--out", "runs/x", "--resume", "--no-sts")
    assert result.exit_code == 2
    assert "--resume: no interrupted run" in error_line(result)
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


def test_bad_input_with_the_default_out_creates_no_runs_folder(tmp_path, monkeypatch):
    """Without --out a run goes to runs/<timestamp>; bad data must not leave runs/ behind."""
    (tmp_path / "p.csv").write_text("base,ref,similarity\na,b,2\n")
    monkeypatch.chdir(tmp_path)
    result = run("train", "p.csv", "--no-sts")
    assert result.exit_code == 2
    assert "outside [0, 1]" in error_line(result)
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


UNWRITABLE = "/proc/domain-tune-out"  # no file can be created in /proc, even by root


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc as an unwritable folder")
@pytest.mark.parametrize("command", [
    "embed {d}/t.txt --out {o}.npy -m {model}",
    "export --out {o} -m {model}",
    "interpolate -m {model} --base {d}/other --out {o}",
    "plot-similarity --out {o}.png -m {model}",
    "train {d}/p.csv --out {o} -m {model} --no-sts",
    "mine-negatives {d}/p.csv --out {o}.csv -m {model}",
    "pairs taxonomy {d}/t.csv --id-column id --label-column label --synonyms-column syn --out {o}",
])
def test_an_unwritable_out_is_refused_before_any_work(tmp_path, tiny_model_dir, command):
    (tmp_path / "t.txt").write_text(TEXTS)
    (tmp_path / "p.csv").write_text(PAIRS)
    (tmp_path / "t.csv").write_text("id,label,syn\n1,nurse,staff nurse\n")
    args = command.format(d=tmp_path, o=UNWRITABLE, model=tiny_model_dir).split()
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "cannot write in /proc" in error_line(result)


@pytest.mark.parametrize("command, flag", [
    ("match {d}/q.csv --corpus {d}/c.txt --out {d}/q.csv --overwrite -m {model}", "--out"),
    ("match {d}/q.txt --corpus {d}/c.csv --corpus-column label --out {d}/c.csv --overwrite "
     "-m {model}", "--out"),
    ("match {d}/q.txt --corpus {d}/c.txt --out {d}/m.csv --corpus-embeddings {d}/no/c.npy "
     "-m {model}", "--corpus-embeddings"),
])
def test_match_refuses_to_write_onto_its_inputs(tmp_path, tiny_model_dir, command, flag):
    """An --out that is the queries or the corpus would replace them with matches."""
    files = {"q.txt": TEXTS, "q.csv": "title\nnurse\n", "c.txt": TEXTS,
             "c.csv": "label\nnurse\nchef\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = run(*command.format(d=tmp_path, model=tiny_model_dir).split())
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith(f"Error: {flag} ")
    assert sorted(os.listdir(tmp_path)) == sorted(files)
    assert all((tmp_path / n).read_text(encoding="utf-8") == t for n, t in files.items())


@pytest.mark.parametrize("command, message", [
    ("mine-negatives {d}/p.csv --out {d}/p.jsonl -m {model}", "name it *.csv or *.tsv"),
    ("mine-negatives {d}/p.csv --out {d}/p.npy -m {model}", "name it *.csv or *.tsv"),
    ("parallel-sentences {d} --out {d}/par.jsonl", "name it *.csv"),
    ("parallel-sentences {d} --out {d}/par.tsv", "name it *.csv"),
])
def test_csv_writers_refuse_an_out_named_for_another_format(tmp_path, tiny_model_dir, command,
                                                            message):
    """The file would be a CSV table under a .jsonl or .npy name."""
    (tmp_path / "p.csv").write_text(PAIRS, encoding="utf-8")
    result = run(*command.format(d=tmp_path, model=tiny_model_dir).split())
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


@pytest.mark.parametrize("command, message, written", [
    ("train {d}/p.csv --out {d}/o -m {model} --epochs 1 -q --no-sts --sts-limit 5",
     "--sts-limit has no effect with --no-sts; ignored", "o"),
    ("train {d}/p.csv --out {d}/o -m {model} --epochs 1 -q --no-sts --sts-dir {d} --multilingual de",
     "--sts-dir and --multilingual have no effect with --no-sts; ignored", "o"),
    ("train {d}/p.csv --out {d}/o -m {model} --epochs 1 -q --no-sts --max-new-pieces 5",
     "--max-new-pieces needs --add-vocab; ignored", "o"),
    ("train {d}/p.csv --out {d}/o -m {model} --epochs 1 -q --no-sts --validation-file {d}/p.csv "
     "--validation-split 0.1", "--validation-split has no effect with --validation-file", "o"),
    ("eval-sts -m {model} --file {d}/s.csv --split train --json",
     "--split has no effect with --file; ignored", None),
    ("eval-sts -m {model} --file {d}/s.csv --sts-dir {d} --json",
     "--sts-dir has no effect with --file; ignored", None),
    ("eval-translation -m {model} --parallel {d}/par.csv --split train --json",
     "--split has no effect with --parallel; ignored", None),
])
def test_options_that_another_option_makes_useless_are_named(tmp_path, tiny_model_dir, command,
                                                           message, written):
    """Given on the command line and silently ignored, they would mislead: one warning line,
    and the command does its work (a script that always passes them keeps working)."""
    files = {"p.csv": PAIRS, "s.csv": "a,b,1\nc,d,2\ne,f,4\n", "par.csv": "en,de\na,b\nc,d\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = run(*command.format(d=tmp_path, model=tiny_model_dir).split())
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert [line for line in warned if message in line], result.stderr
    if written:
        assert (tmp_path / written / "model.keras").is_file()
    else:
        json.loads(result.stdout)  # the result, as without the ignored option


def test_ignored_options_from_defaults_are_not_named(tmp_path, tiny_model_dir):
    (tmp_path / "s.csv").write_text("a,b,1\nc,d,2\ne,f,4\n", encoding="utf-8")
    result = run("eval-sts", "-m", tiny_model_dir, "--file", tmp_path / "s.csv", "--json")
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr


def test_no_sts_with_multilingual_none_is_accepted(tmp_path, tiny_model_dir):
    (tmp_path / "p.csv").write_text(PAIRS, encoding="utf-8")
    result = run("train", tmp_path / "p.csv", "--out", tmp_path / "o", "-m", tiny_model_dir,
                 "--no-sts", "--multilingual", "none", "--epochs", 1, "--validation-split", 0, "-q")
    assert result.exit_code == 0, result.output


def test_sigterm_removes_the_partial_output_and_exits_143(tmp_path, tiny_model_dir, monkeypatch):
    """SIGTERM (a job scheduler's stop) ended the process at once: rc 143 with no message, and
    a half-written OUT.tmp-PID (embed, match) or OUT.tmp-*/ (export) stayed behind.  It now
    unwinds as Ctrl-C does."""
    import signal

    from domain_tune import embedding_files

    (tmp_path / "t.txt").write_text("nurse\nchef\npilot\n", encoding="utf-8")
    write = embedding_files._CsvSink.write

    def write_then_terminated(self, texts, emb, row):
        write(self, texts, emb, row)
        os.kill(os.getpid(), signal.SIGTERM)  # mid-way: the rows are in the temporary file

    monkeypatch.setattr(embedding_files._CsvSink, "write", write_then_terminated)
    before = signal.getsignal(signal.SIGTERM)
    result = run("embed", tmp_path / "t.txt", "--out", tmp_path / "e.csv", "-m", tiny_model_dir)
    assert result.exit_code == 143, result.output
    assert error_line(result) == "Error: terminated (SIGTERM)"
    assert sorted(os.listdir(tmp_path)) == ["t.txt"]
    assert signal.getsignal(signal.SIGTERM) == before  # the caller's handler is back


# --- a full disk -----------------------------------------------------------------------


def _no_space(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_stops_embed_before_it_writes(tmp_path, tiny_model_dir, monkeypatch):
    """A memory-mapped .npy on a full disk died of SIGBUS with half a file left; its space is
    now reserved first, and a full disk is one line and exit 2."""
    from domain_tune import embedding_files

    texts = tmp_path / "texts.txt"
    texts.write_text("nurse\nchef\n")
    out = tmp_path / "out" / "e.npy"
    out.parent.mkdir()
    monkeypatch.setattr(embedding_files.os, "posix_fallocate", _no_space)
    result = run("embed", texts, "--model", tiny_model_dir, "--out", out)
    assert result.exit_code == 2, result.output
    assert error_line(result) == (f"Error: no space left on the device writing {out}; free some "
                                  "space or write the output elsewhere")
    assert os.listdir(out.parent) == []


def test_the_npy_output_is_reserved_in_full(tmp_path):
    from domain_tune.embedding_files import reserve

    path = tmp_path / "a.npy"
    with open(path, "wb") as f:
        f.truncate(8 << 20)  # sparse: no block allocated
    assert os.stat(path).st_blocks * 512 < 1 << 20
    reserve(path)
    assert os.stat(path).st_blocks * 512 >= 8 << 20


@pytest.mark.parametrize("error", [
    RuntimeError("Can't decrement id ref count (file write failed: time = Fri Dec  4, filename = "
                 "'/x/tmpab12', file descriptor = 7, errno = 28, error message = 'No space left "
                 "on device', buf = 0x1, total write size = 4096)"),  # h5py, Keras' weights
    OSError("1024000 requested and 51168 written"),  # NumPy's tofile
])
def test_a_full_disk_inside_a_library_is_one_line_and_exit_2(tmp_path, monkeypatch, error):
    from domain_tune import api

    monkeypatch.setattr(api, "load_model", lambda model: (_ for _ in ()).throw(error))
    result = run("export", "--out", tmp_path / "x")
    assert result.exit_code == 2, result.output
    assert error_line(result) == ("Error: no space left on the device; free some space or "
                                  "write the output elsewhere")


def test_a_full_disk_is_not_called_out_of_memory(tmp_path, monkeypatch):
    """TensorFlow's file writes report a full disk as ResourceExhaustedError, as they do an
    allocation that failed."""
    import tensorflow as tf

    from domain_tune import api

    def full(model):
        raise tf.errors.ResourceExhaustedError(
            None, None, "/x/variables/variables.data-00000-of-00001.tempstate; No space left on "
                        "device")

    monkeypatch.setattr(api, "load_model", full)
    result = run("export", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert error_line(result).startswith("Error: no space left on the device")


def test_a_failed_keras_save_leaves_no_temporary_files(tiny_encoder, tmp_path, monkeypatch):
    """A write that fails (a full disk) raises; the layers' assets, gathered in a temporary
    folder before they go into the archive, are removed, and nothing is left to be cleaned up
    on the way out (an earlier staged weights file was, after its folder had gone: Python
    printed that FileNotFoundError and its traceback)."""
    import gc
    import sys

    from keras.src.saving import saving_lib

    import domain_tune.keras_archive as keras_archive
    from domain_tune.export import save_keras

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(keras_archive, "_crc32", _no_space)
    temporary = tmp_path / "temporary"
    monkeypatch.setattr(saving_lib, "get_temp_dir",
                        lambda: temporary.mkdir() or str(temporary))
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(OSError, match="No space left"):
        save_keras(tiny_encoder, str(folder / "model.keras"))
    assert [p.name for p in folder.iterdir()] == ["model.keras"]  # the archive, unfinished
    assert not temporary.exists()
    shutil.rmtree(folder)
    gc.collect()
    assert unraisable == []


# --- a run that diverges, and the models it left ------------------------------------------


def test_a_diverged_run_is_one_line_and_exit_2(tmp_path, tiny_model_dir):
    """``--lr 1e30`` on a file of 8 pairs: one step, whose reported loss is from before it;
    a model of NaN weights was saved and the run said Done."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("base,ref,similarity\n" + "".join(
        f"{a},{b},{s}\n" for a, b, s in [("nurse", "carer", 0.9), ("chef", "cook", 0.95),
                                         ("pilot", "baker", 0.1), ("nurse", "chef", 0.2)] * 2))
    out = tmp_path / "run"
    result = run("train", pairs, "--model", tiny_model_dir, "--out", out, "--epochs", 1,
                 "--learning-rate", 1e39, "--clipnorm", 0, "--no-sts", "-q")
    assert result.exit_code == 2, result.output
    assert error_line(result).endswith("; lower --learning-rate or check the data (no model was "
                                       "written)")
    assert sorted(os.listdir(tmp_path)) == ["pairs.csv"]


def test_nan_embeddings_are_refused():
    """A model of NaN weights (a diverged run saved by an older version) embedded NaN rows,
    and eval-retrieval scored them as a perfect ranking."""
    import tensorflow as tf

    import domain_tune as dt

    def diverged(texts):
        return tf.fill([tf.shape(texts)[0], 4], float("nan"))

    with pytest.raises(BadInputError, match=r"^the model gave NaN or infinite embeddings \(2 of 2 "
                                            r"texts of a batch, first 'a'\)"):
        dt.encode(diverged, ["nurse", "a"])  # batches are sorted by length


def test_json_output_is_strict_json():
    from domain_tune.outputs import finite_json

    value = {"pearson": float("nan"), "rows": [1.0, float("inf"), {"x": -float("inf")}], "n": 3}
    assert finite_json(value) == {"pearson": None, "rows": [1.0, None, {"x": None}], "n": 3}
    assert json.loads(json.dumps(finite_json(value), allow_nan=False))["pearson"] is None


@pytest.mark.parametrize("command", ["train", "export"])
def test_an_empty_out_is_refused(tmp_path, monkeypatch, command):
    """``train --out ""`` wrote runs/<timestamp> as if --out had not been given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.csv").write_text(PAIRS)
    args = ["train", "p.csv", "--no-sts"] if command == "train" else ["export"]
    result = run(*args, "--out", "")
    assert result.exit_code == 2
    assert error_line(result) == "Error: --out is empty; name a new folder"
    assert os.listdir(tmp_path) == ["p.csv"]


# --- an option of one value given twice ------------------------------------------------------


def test_an_option_given_twice_with_different_values_is_a_warning_and_the_last_wins(tmp_path):
    """``plot-similarity --model A --model B`` drew B alone without a word; the last value
    still wins (scripts override a default they put first), now with a one-line warning."""
    missing = tmp_path / "missing-model"
    result = run("plot-similarity", "--model", "use-m3", "--model", missing,
                 "--out", tmp_path / "x.png")
    assert result.exit_code == 2
    warned = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert warned == [f"Warning: --model given 2 times (use-m3, then {missing}); it takes one "
                      f"value, and the last one, {missing}, is used"]
    assert str(missing) in error_line(result)  # the last value was the one used
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("args, warned", [
    (["--batch-size", "8", "--batch-size", "8"], False),  # the same value: nothing to say
    (["--batch-size", "8", "--batch-size=16"], True),  # either spelling
    (["--batch-size", "8"], False),
])
def test_only_differing_values_of_a_repeated_option_are_reported(tmp_path, args, warned):
    result = run("embed", tmp_path / "missing.txt", "--out", tmp_path / "e.npy", *args)
    assert result.exit_code == 2
    assert ("Warning: --batch-size given 2 times (8, then 16)" in result.stderr) == warned
    assert "missing.txt" in error_line(result)


def test_a_repeated_option_of_a_nested_command_is_reported(tmp_path):
    result = run("pairs", "esco", tmp_path / "missing.csv", "--out", tmp_path / "p",
                 "--seed", "1", "--seed", "2")
    assert "Warning: --seed given 2 times (1, then 2)" in result.stderr
    assert result.exit_code == 2 and "missing.csv" in error_line(result)
