"""The STS benchmark: locate it, read a split, refuse malformed lines.

Files are the SemEval STS benchmark's tab-separated CSVs (``sts-train.csv``,
``sts-dev.csv``, ``sts-test.csv``): no header; genre, file, year, id, score
(0-5), sentence 1, sentence 2, and sometimes licence fields after them.
Quoting is not used, so lines are split on tabs as they are.

Where the data comes from, in order: ``--sts-dir``, ``$DOMAIN_TUNE_STS_DIR``,
or a cached download of the canonical archive.
"""

import contextlib
import dataclasses
import os
import tarfile
import tempfile
import urllib.request

from domain_tune.datasets.files import check_text_file, utf8_error
from domain_tune.errors import BadInputError

SPLITS = {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test.csv"}
ARCHIVE_URL = "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz"
ENV_VAR = "DOMAIN_TUNE_STS_DIR"
MAX_SCORE = 5.0


@dataclasses.dataclass
class STSSplit:
    sentences1: list
    sentences2: list
    scores: list
    path: str

    def __len__(self):
        return len(self.scores)

    def head(self, n):
        return STSSplit(self.sentences1[:n], self.sentences2[:n], self.scores[:n], self.path)


def cache_dir():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "domain-tune", "stsbenchmark")


def download(timeout=20):
    """Download and unpack the canonical archive into :func:`cache_dir`."""
    target = cache_dir()
    parent = os.path.dirname(target)
    created = not os.path.isdir(parent)
    os.makedirs(parent, exist_ok=True)
    try:
        return _download_into(target, timeout)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(parent)  # leave no empty cache folder behind
        raise


def _download_into(target, timeout):
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as tmp:
        archive = os.path.join(tmp, "Stsbenchmark.tar.gz")
        try:
            with urllib.request.urlopen(ARCHIVE_URL, timeout=timeout) as r, open(archive, "wb") as f:
                f.write(r.read())
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (OSError, tarfile.TarError) as e:
            raise BadInputError(
                f"STS benchmark not found and could not be downloaded ({type(e).__name__}); "
                f"pass --sts-dir DIR (or set ${ENV_VAR}) with sts-dev.csv etc."
            ) from e
        os.replace(os.path.join(tmp, "stsbenchmark"), target)
    return target


def resolve_sts_dir(sts_dir=None, fetch=True):
    """The folder holding the split files."""
    if sts_dir is not None and not str(sts_dir).strip():
        raise BadInputError("--sts-dir is empty; name the folder of sts-dev.csv etc.")
    if sts_dir:
        source = f"--sts-dir {sts_dir}"
    elif os.environ.get(ENV_VAR):
        sts_dir, source = os.environ[ENV_VAR], f"${ENV_VAR}={os.environ[ENV_VAR]}"
    elif os.path.isdir(cache_dir()):
        return cache_dir()
    elif fetch:
        return download()
    else:
        raise BadInputError("no STS benchmark: pass --sts-dir DIR")
    if not os.path.isdir(sts_dir):
        raise BadInputError(f"{source}: not a directory")
    return sts_dir


def parse_score(path, line, text):
    """A gold score of an STS file: a number in 0-5 (else a :class:`BadInputError` naming the line)."""
    try:
        score = float(text)
    except ValueError:
        raise BadInputError(f"{path}:{line}: score {text!r} is not a number") from None
    if not 0.0 <= score <= MAX_SCORE:  # also refuses nan
        raise BadInputError(f"{path}:{line}: score {text} is outside 0-5")
    return score


def check_scores(path, scores, vary=True):
    """Refuse a file without pairs or, with ``vary``, one whose scores are all equal (no
    correlation exists)."""
    if not scores:
        raise BadInputError(f"STS file {path} holds no pairs")
    if vary and min(scores) == max(scores):
        raise BadInputError(f"STS file {path}: every score is {scores[0]:g}; Pearson and "
                            "Spearman need scores that differ")


def read_sts(path):
    """Read every pair of a split file; a malformed line is an error, not a skip."""
    check_text_file(path, "STS file")
    s1, s2, scores = [], [], []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) < 7:
                    raise BadInputError(
                        f"{path}:{lineno}: expected at least 7 tab-separated fields, got {len(fields)}"
                    )
                score = parse_score(path, lineno, fields[4])
                s1.append(fields[5])
                s2.append(fields[6])
                scores.append(score)
    except UnicodeDecodeError as e:
        raise utf8_error(path, e) from e
    check_scores(path, scores)
    return STSSplit(s1, s2, scores, path)


def load_split(split="dev", sts_dir=None, limit=None):
    if split not in SPLITS:
        raise BadInputError(f"unknown STS split {split!r}; use {', '.join(SPLITS)}")
    folder = resolve_sts_dir(sts_dir)
    path = os.path.join(folder, SPLITS[split])
    if not os.path.isfile(path):
        raise BadInputError(f"STS directory {folder} has no {SPLITS[split]} (the {split} split)")
    data = read_sts(path)
    return data.head(limit) if limit else data
