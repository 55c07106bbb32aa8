"""Parallel sentences: the reader's checks and the stsb-multi-mt builder."""

import csv

import pytest

from domain_tune.datasets.parallel import read_parallel, stsb_parallel, write_parallel
from domain_tune.errors import BadInputError


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_first_two_columns_by_default(tmp_path):
    p = write(tmp_path / "p.csv", 'en,de,language\n"Hello, world",Hallo Welt,de\nA cat.,Eine Katze.,de\n')
    data = read_parallel(p)
    assert data.source == ["Hello, world", "A cat."] and data.translation == ["Hallo Welt", "Eine Katze."]
    assert data.columns == ("en", "de") and len(data) == 2


def test_named_columns(tmp_path):
    p = write(tmp_path / "p.tsv", "id\ttgt\tsrc\n1\tun chat\ta cat\n2\tun chien\ta dog\n")
    data = read_parallel(p, ("src", "tgt"))
    assert data.source == ["a cat", "a dog"] and data.translation == ["un chat", "un chien"]


@pytest.mark.parametrize("text, columns, message", [
    ("source,translation\na,x\nb,\n", None, "misaligned: row 3 has a sentence in one of 'source' / "
                                            "'translation' and none in the other"),
    ("source,translation\na,x\n,y\nc,\n", None, "misaligned: rows 3, 4 have"),
    ("source,translation\na,x\nb,y,z\n", None, "line 3 has 3 fields but the header has 2"),
    ("source,translation\n", None, "has a header but no sentences"),
    ("source\na\n", None, "needs a source and a translation column"),
    ("source,translation\na,x\n", ("en", "translation"), "no column 'en' (columns: source, translation)"),
    ("source,translation\na,x\n", ("source", "source"), "names 'source' twice"),
    ("source,translation\na,a\nb,b\n", None, "every translation equals its source"),
    ("a,b\n,\nc,d\n", None, "no sentence in row 2"),
])
def test_bad_parallel_files(tmp_path, text, columns, message):
    p = write(tmp_path / "p.csv", text)
    with pytest.raises(BadInputError, match=None) as info:
        read_parallel(p, columns)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_empty_missing_and_non_utf8(tmp_path):
    with pytest.raises(BadInputError, match="is empty"):
        read_parallel(write(tmp_path / "e.csv", ""))
    with pytest.raises(BadInputError, match="does not exist"):
        read_parallel(tmp_path / "nope.csv")
    with pytest.raises(BadInputError, match="not valid UTF-8"):
        read_parallel(write(tmp_path / "l.csv", "source,translation\ncafé,Kaffee\n", "latin-1"))


def _stsb(folder, lang, rows):
    with open(folder / f"stsb-{lang}-train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def test_stsb_parallel_pairs_each_source_with_every_language(tmp_path):
    _stsb(tmp_path, "en", [["A cat.", "A dog.", "3.0"], ["A cat.", "A bird.", "1.0"]])
    _stsb(tmp_path, "de", [["Eine Katze.", "Ein Hund.", "3.0"], ["Eine Katze.", "Ein Vogel.", "1.0"]])
    _stsb(tmp_path, "fr", [["Un chat.", "Un chien.", "3.0"], ["Un chat.", "Un oiseau.", "1.0"]])
    frame = stsb_parallel(str(tmp_path))
    # "A cat." appears twice with the same translation: written once per language
    assert len(frame) == 2 * 3
    assert list(frame.columns) == ["source", "translation", "language"]
    de = frame[frame.language == "de"]
    assert dict(zip(de.source, de.translation)) == {"A cat.": "Eine Katze.", "A dog.": "Ein Hund.",
                                                    "A bird.": "Ein Vogel."}
    out = write_parallel(stsb_parallel(str(tmp_path), "fr"), tmp_path / "p.csv")
    data = read_parallel(out)
    assert data.columns == ("source", "translation") and set(data.translation) == {
        "Un chat.", "Un chien.", "Un oiseau."}
    _stsb(tmp_path, "ja", [["猫。", "犬。", "3.0"]])
    with pytest.raises(BadInputError, match="not row-aligned"):
        stsb_parallel(str(tmp_path), "ja")
    with pytest.raises(BadInputError, match="no stsb-xx-train.csv"):
        stsb_parallel(str(tmp_path), "xx")


@pytest.mark.parametrize("trial", range(12))
def test_no_sentence_of_the_heldout_panel_is_ever_parallel_data(tmp_path, trial):
    """Property, over random folders whose sentences repeat across rows and languages (as
    STS-B's do): no sentence of the held-out panel, in any language, case or spacing, is a
    source or a translation of the parallel file built from the train split; and the panel
    is what load_multilingual(..., "heldout") measures."""
    import numpy as np

    from domain_tune.datasets.parallel import stsb_parallel
    from domain_tune.datasets.stsb_multi import heldout_sentences, load_multilingual, sentence_key

    rng = np.random.default_rng(trial)
    n = int(rng.integers(10, 80))
    languages = ["en", "de", "fr", "ja"][: int(rng.integers(2, 5))]
    pool = {lang: [f"{lang} sentence {k}" for k in range(int(rng.integers(n // 2, 2 * n)))]
            for lang in languages}
    for lang in languages:
        rows = []
        for _ in range(n):
            a, b = rng.choice(len(pool[lang]), 2)
            first = pool[lang][a]
            if rng.random() < 0.2:  # the same sentence again, in another case or spacing
                first = "  " + first.upper()
            rows.append([first, pool[lang][b], f"{rng.uniform(0, 5):.1f}"])
        if lang == "en":
            scores = [r[2] for r in rows]
        else:
            for r, s in zip(rows, scores):
                r[2] = s  # row-aligned: the same score in every language
        with open(tmp_path / f"stsb-{lang}-train.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)
    panel = heldout_sentences(str(tmp_path))
    assert panel  # a fifth of the rows
    try:
        frame = stsb_parallel(str(tmp_path), ",".join(languages[1:]))
    except BadInputError as e:  # every row shared a sentence with the panel: said in one line
        assert "no parallel sentences are left" in str(e)
    else:
        assert len(frame)
        used = {sentence_key(t) for t in [*frame["source"], *frame["translation"]]}
        assert not used & panel
    held = load_multilingual(str(tmp_path), "heldout", languages[1:])
    measured = {sentence_key(t) for d in held.data.values() for t in d.sentences1 + d.sentences2}
    assert measured == panel
