"""STS in many languages: the stsb-multi-mt format, located, read and aligned.

Files are ``stsb-LANG-SPLIT.csv`` (``SPLIT`` is train, dev or test), comma-
separated with quotes, no header, three columns: sentence 1, sentence 2 and a
score from 0 to 5.  Row *i* of every language's file is the translation of row
*i* of the pivot language's (English, ``stsb-en-*.csv``): the files give
monolingual STS per language, cross-lingual STS (sentence 1 from the pivot,
sentence 2 from another language) and parallel sentences.  Any folder of such
files works, with any language codes (letters, digits and ``_``).

The **held-out panel** (split ``heldout``): a fixed fifth of the rows of the
*train* files (:func:`heldout_rows`, the same rows in every language), never
used as parallel sentences.  :func:`~domain_tune.datasets.parallel.stsb_parallel`
leaves out those rows and every other pair that shares a sentence with them, and
``train --parallel`` drops such pairs from any parallel file
(:func:`heldout_sentences`), so the panel measures general quality on sentences
that no alignment objective saw.  The dev split comes from the same sources as the
train sentences; the held-out panel is what a user's own sentences look like.

Where the data comes from, in order: ``--multilingual-dir``,
``$DOMAIN_TUNE_MULTILINGUAL_DIR``, or a cached download of the data set's
public CSVs (PhilipMay/stsb-multi-mt on GitHub, May 2021; the STS benchmark's
licence) in ``~/.cache/domain-tune/stsb-multi-mt``.
"""

import contextlib
import csv
import dataclasses
import os
import re
import tempfile
import urllib.request

import numpy as np

from domain_tune.datasets.files import check_text_file, utf8_error
from domain_tune.datasets.sts import SPLITS, STSSplit, check_scores, parse_score
from domain_tune.errors import BadInputError

ENV_VAR = "DOMAIN_TUNE_MULTILINGUAL_DIR"
PIVOT = "en"
# the languages of the published data set (the pivot first)
PUBLISHED = ("en", "de", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh")
BASE_URL = "https://raw.githubusercontent.com/PhilipMay/stsb-multi-mt/HEAD/data"
LANGUAGE_CODE = re.compile(r"^[A-Za-z0-9_]+$")
FILE_NAME = re.compile(r"^stsb-([A-Za-z0-9_]+)-(train|dev|test)\.csv$")


# the panel carved from the train files: rows never used as parallel sentences
HELDOUT = "heldout"
HELDOUT_FRACTION = 0.2
HELDOUT_SEED = 39
PANEL_SPLITS = (*SPLITS, HELDOUT)
MIN_HELDOUT_ROWS = 10


def file_name(language, split="dev"):
    return f"stsb-{language}-{'train' if split == HELDOUT else split}.csv"


def heldout_rows(n_rows, fraction=HELDOUT_FRACTION, seed=HELDOUT_SEED):
    """The rows of a train split that form the held-out panel (sorted).

    ``round(fraction * n_rows)`` rows (at least one when there are two or more),
    drawn by a fixed seed from the row count alone: the same rows in every
    language and for every caller.  A file of fewer than :data:`MIN_HELDOUT_ROWS`
    rows has no held-out panel (none is carved from it).
    """
    if n_rows < MIN_HELDOUT_ROWS:
        return np.array([], dtype=np.int64)
    size = min(n_rows - 1, max(1, int(round(fraction * n_rows))))
    return np.sort(np.random.default_rng([seed, n_rows]).permutation(n_rows)[:size])


def sentence_key(text):
    """Sentences compared for the held-out panel: white space collapsed, case-folded."""
    return " ".join(str(text).split()).casefold()


def read_stsb_file(path):
    """Every row of one ``stsb-LANG-SPLIT.csv`` (or any file in its format) as an :class:`STSSplit`.

    A row without exactly three fields, an empty sentence, a score that is not a number
    in 0-5, non-UTF-8 text or a file without rows is a :class:`BadInputError` naming
    the file and line; blank lines are skipped.
    """
    check_text_file(path, "STS file")
    path = os.fspath(path)
    s1, s2, scores = [], [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                line = reader.line_num
                if len(row) != 3:
                    raise BadInputError(
                        f"{path}:{line}: expected 3 comma-separated fields (sentence1, sentence2, "
                        f"score), got {len(row)}; quote texts that contain commas"
                    )
                if not s1 and not _is_number(row[2]):
                    raise BadInputError(
                        f"{path}:{line}: score {row[2].strip()!r} is not a number (the format has "
                        "no header line: sentence1,sentence2,score rows only; remove a header)"
                    )
                score = parse_score(path, line, row[2])
                for k in (0, 1):
                    if not row[k].strip():
                        raise BadInputError(f"{path}:{line}: sentence{k + 1} is empty; every pair "
                                            "needs two texts")
                s1.append(row[0])
                s2.append(row[1])
                scores.append(score)
    except UnicodeDecodeError as e:
        raise utf8_error(path, e) from e
    except csv.Error as e:
        raise BadInputError(f"{path}: not a readable CSV ({e})") from e
    check_scores(path, scores, vary=False)  # (also read for its sentences alone: parallel-sentences)
    return STSSplit(s1, s2, scores, path)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def find_languages(folder, split="dev"):
    """Language codes of the ``stsb-LANG-SPLIT.csv`` files in ``folder`` (sorted, pivot first)."""
    split = "train" if split == HELDOUT else split
    codes = set()
    for name in os.listdir(folder):
        m = FILE_NAME.match(name)
        if m and m.group(2) == split:
            codes.add(m.group(1))
    return sorted(codes, key=lambda c: (c != PIVOT, c))


def parse_languages(value):
    """``"de,fr"`` -> ``["de", "fr"]``; ``None``/``"all"`` -> ``None`` (every language found)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    codes = []
    for code in (c.strip() for c in items):
        if not LANGUAGE_CODE.match(code):
            raise BadInputError(
                f"language {code!r}: use codes of letters, digits or _ separated by commas, "
                "e.g. de,fr,ja (or 'all')"
            )
        if code not in codes:
            codes.append(code)
    if not codes:
        raise BadInputError("no language given; e.g. de,fr,ja (or 'all')")
    return codes


# --- where the data is -------------------------------------------------------


def cache_dir():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "domain-tune", "stsb-multi-mt")


def download(languages, split="dev", timeout=20):
    """Download the published files of ``languages`` missing from :func:`cache_dir`.

    Each file is written under a temporary name and renamed, so the cache
    never holds half a file; offline it fails with one line.
    """
    unknown = [lang for lang in languages if lang not in PUBLISHED]
    if unknown:
        raise BadInputError(
            f"no published stsb-multi-mt data for {', '.join(unknown)} (it has "
            f"{', '.join(PUBLISHED)}); pass --multilingual-dir DIR with {file_name(unknown[0], split)}"
        )
    target = cache_dir()
    created = [d for d in (os.path.dirname(os.path.dirname(target)), os.path.dirname(target), target)
               if not os.path.isdir(d)]
    os.makedirs(target, exist_ok=True)
    try:
        for lang in languages:
            path = os.path.join(target, file_name(lang, split))
            if os.path.isfile(path):
                continue
            url = f"{BASE_URL}/{file_name(lang, split)}"
            fd, tmp = tempfile.mkstemp(dir=target, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
                    f.write(r.read())
                os.replace(tmp, path)
            except OSError as e:
                raise BadInputError(
                    f"multilingual STS data not found and {file_name(lang, split)} could not be "
                    f"downloaded ({type(e).__name__}); pass --multilingual-dir DIR (or set "
                    f"${ENV_VAR}) with stsb-LANG-{split}.csv files"
                ) from e
            finally:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
    except BaseException:
        for d in reversed(created):  # leave no empty cache folder behind
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
    return target


def locate(data_dir=None):
    """The folder given (``data_dir``, else ``$DOMAIN_TUNE_MULTILINGUAL_DIR``) or ``None``.

    A folder that is given but missing is an error.
    """
    if data_dir:
        source = f"--multilingual-dir {data_dir}"
    elif os.environ.get(ENV_VAR):
        data_dir, source = os.environ[ENV_VAR], f"${ENV_VAR}={os.environ[ENV_VAR]}"
    else:
        return None
    if not os.path.isdir(data_dir):
        raise BadInputError(f"{source}: not a directory")
    return os.fspath(data_dir)


def resolve_multilingual_dir(data_dir=None, languages=None, split="dev", pivot=PIVOT, fetch=True):
    """The folder holding the ``stsb-LANG-SPLIT.csv`` files to read.

    ``data_dir`` or the environment variable wins; otherwise the cache, with
    the missing files of ``languages`` (default: all published ones)
    downloaded when ``fetch``.  Without ``fetch`` and with nothing cached,
    returns ``None``.
    """
    folder = locate(data_dir)
    if folder is not None:
        return folder
    wanted = [pivot] + [lang for lang in (languages or PUBLISHED) if lang != pivot]
    cached = cache_dir()
    if all(os.path.isfile(os.path.join(cached, file_name(lang, split))) for lang in wanted):
        return cached
    if not fetch:
        return None
    return download(wanted, split)


# --- reading a split of several languages ------------------------------------


@dataclasses.dataclass
class MultilingualSplit:
    """One split in several row-aligned languages: ``data[lang]`` is an :class:`STSSplit`."""

    split: str
    pivot: str
    languages: list  # the other languages, in the order asked for
    data: dict
    folder: str

    def __len__(self):
        return len(self.data[self.pivot])


def load_multilingual(data_dir=None, split="dev", languages=None, limit=None, pivot=PIVOT,
                      fetch=True):
    """Read the pivot and ``languages`` (default: every one in the folder) of ``split``.

    Refuses a language without a file (naming the ones there), files of
    different lengths and rows whose scores differ from the pivot's (files
    that are not row-aligned).  ``limit`` keeps the first N rows.
    """
    if split not in PANEL_SPLITS:
        raise BadInputError(f"unknown STS split {split!r}; use {', '.join(PANEL_SPLITS)}")
    languages = given = parse_languages(languages)
    if not LANGUAGE_CODE.match(pivot):
        raise BadInputError(f"pivot language {pivot!r}: use letters, digits or _")
    folder = resolve_multilingual_dir(data_dir, languages, split, pivot, fetch)
    found = find_languages(folder, split)
    if languages is None:
        languages = [lang for lang in found if lang != pivot]
    languages = [lang for lang in languages if lang != pivot]
    for lang in [pivot, *languages]:
        if lang not in found:
            there = ", ".join(found) if found else "none"
            raise BadInputError(
                f"no {file_name(lang, split)} in {folder} (languages there for {split}: {there})"
            )
    if not languages:
        if given:
            raise BadInputError(f"--languages names only {pivot}, the language the others are "
                                "compared with; name another language")
        raise BadInputError(f"{folder} holds only {file_name(pivot, split)}; another language "
                            "is needed")
    data = {lang: read_stsb_file(os.path.join(folder, file_name(lang, split)))
            for lang in [pivot, *languages]}
    ref = data[pivot]
    for lang in languages:
        other = data[lang]
        if len(other) != len(ref):
            raise BadInputError(
                f"{file_name(lang, split)} has {len(other)} rows but {file_name(pivot, split)} has "
                f"{len(ref)}: the files are not row-aligned translations"
            )
        bad = next((i for i, (a, b) in enumerate(zip(ref.scores, other.scores)) if a != b), None)
        if bad is not None:
            raise BadInputError(
                f"row {bad + 1} of {file_name(lang, split)} has score {other.scores[bad]:g} but "
                f"{file_name(pivot, split)} has {ref.scores[bad]:g}: the files are not row-aligned "
                "translations"
            )
    if split == HELDOUT:
        rows = heldout_rows(len(ref))
        data = {lang: _take(d, rows) for lang, d in data.items()}
    if limit:
        data = {lang: d.head(limit) for lang, d in data.items()}
    return MultilingualSplit(split, pivot, languages, data, folder)


def _take(data, rows):
    return STSSplit([data.sentences1[i] for i in rows], [data.sentences2[i] for i in rows],
                    [data.scores[i] for i in rows], data.path)


def heldout_sentences(data_dir=None, fetch=False):
    """Every sentence of the held-out panel, in every language of the folder, as
    :func:`sentence_key` keys; ``None`` when no stsb-multi-mt train data is found.

    The folder is ``data_dir``, ``$DOMAIN_TUNE_MULTILINGUAL_DIR`` or the cache;
    nothing is downloaded unless ``fetch``.
    """
    folder = locate(data_dir)
    if folder is None:
        cached = cache_dir()
        if os.path.isfile(os.path.join(cached, file_name(PIVOT, HELDOUT))):
            folder = cached
        elif fetch:
            folder = resolve_multilingual_dir(None, None, "train")
        else:
            return None
    found = find_languages(folder, "train")
    if PIVOT not in found or len(found) < 2:
        return None
    data = load_multilingual(folder, HELDOUT, [lang for lang in found if lang != PIVOT])
    return frozenset(sentence_key(t) for d in data.data.values()
                     for t in d.sentences1 + d.sentences2)


def load_language(language, data_dir=None, split="dev", limit=None):
    """One language's pairs (``"de"``), or cross-lingual ones (``"en-de"``: sentence 1 from
    ``stsb-en``, sentence 2 from the row-aligned ``stsb-de``), as an :class:`STSSplit`."""
    parts = language.split("-")
    if len(parts) > 2 or not all(LANGUAGE_CODE.match(p) for p in parts):
        raise BadInputError(f"language {language!r}: give one language (de) or a pair (en-de)")
    first, second = parts[0], parts[-1]
    if first == second:
        if split not in PANEL_SPLITS:
            raise BadInputError(f"unknown STS split {split!r}; use {', '.join(PANEL_SPLITS)}")
        folder = resolve_multilingual_dir(data_dir, [first], split, pivot=first)
        path = os.path.join(folder, file_name(first, split))
        if not os.path.isfile(path):
            there = ", ".join(find_languages(folder, split)) or "none"
            raise BadInputError(f"no {file_name(first, split)} in {folder} (languages there for "
                                f"{split}: {there})")
        data = read_stsb_file(path)
        if split == HELDOUT:
            data = _take(data, heldout_rows(len(data)))
        return data.head(limit) if limit else data
    both = load_multilingual(data_dir, split, [second], limit, pivot=first)
    a, b = both.data[first], both.data[second]
    return STSSplit(a.sentences1, b.sentences2, a.scores, f"{a.path} + {b.path}")


# languages of the panel `train` reports when none are chosen: the three pairs that lost most
# cross-lingual STS when tuning on English ESCO pairs (en-ja, en-pl, en-de), about a third of
# the cost of all ten
TRAIN_LANGUAGES = ("de", "ja", "pl")


def load_for_training(data_dir=None, languages=None, split="dev", limit=None):
    """The panel data ``train`` reports on, or ``(None, notice)`` when there is none to find.

    ``languages`` ``None`` is the default, best effort: :data:`TRAIN_LANGUAGES`
    (those of them in a folder that has some, else all of the folder's) from
    the folder given, ``$DOMAIN_TUNE_MULTILINGUAL_DIR`` or the cache (those of
    them cached), and nothing is downloaded: without data the panel is skipped with a notice.
    Languages chosen explicitly (a list or ``"all"``) are read as
    :func:`load_multilingual` reads them, downloading what is missing, and
    missing data is an error.  ``"none"`` skips the panel.
    """
    if isinstance(languages, str) and languages.strip().lower() == "none":
        return None, None
    if languages is not None:
        return load_multilingual(data_dir, split, languages, limit), None
    folder = locate(data_dir)
    if folder is None and os.path.isfile(os.path.join(cache_dir(), file_name(PIVOT, split))):
        if set(find_languages(cache_dir(), split)) & set(TRAIN_LANGUAGES):
            folder = cache_dir()  # what an earlier download left there
    if folder is None:
        return None, (
            "multilingual STS skipped: no stsb-multi-mt data found; pass --multilingual-dir DIR "
            f"(or set ${ENV_VAR}), or --multilingual LIST to download it, or --multilingual none "
            "to silence this"
        )
    found = find_languages(folder, split)
    chosen = [lang for lang in TRAIN_LANGUAGES if lang in found] or None
    return load_multilingual(folder, split, chosen, limit), None
