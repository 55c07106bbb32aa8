"""The shared CSV reader: delimiter sniffing and one-line errors for malformed rows."""

import pytest

from domain_tune.datasets.files import delimiter, read_csv
from domain_tune.datasets.pairs import read_pairs
from domain_tune.datasets.texts import text_chunks
from domain_tune.errors import BadInputError


@pytest.mark.parametrize("name, content, sep", [
    ("p.csv", "base,ref,similarity\na;x,b,1\n", ","),
    ("p.csv", "base;ref;similarity\na;b;1\n", ";"),
    ("p.csv", "base\tref\tsimilarity\na\tb\t1\n", "\t"),
    ("p.txt", "base\tref\tsimilarity\na\tb\t1\n", "\t"),
    ("p.tsv", "base,ref\tsimilarity\n", "\t"),  # the extension wins
    ("p.csv", "text\nnurse\n", ","),
    ("p.csv", "\ufeffbase;ref;similarity\r\na;b;1\r\n", ";"),
    ("p.csv", '"name, full";score\nx;1\n', ";"),  # a quoted comma is no delimiter
    ("p.txt", '"a,b"\tc\nx\ty\n', "\t"),
    ("p.csv", "Titel, deutsch;Wert\nKoch;1\nArzt;2\n", ";"),  # a tie: the rows decide
])
def test_delimiter_is_sniffed_from_the_header(tmp_path, name, content, sep):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert delimiter(path) == sep


@pytest.mark.parametrize("content", [
    "base;ref;similarity\nnurse;staff nurse;1\nchef;cook;0.5\n",
    "base;ref;similarity\nnurse;staff nurse;1,0\nchef;cook;0,5\n",  # decimal commas
    "base\tref\tsimilarity\nnurse\tstaff nurse\t1\nchef\tcook\t0.5\n",
    "\ufeffbase,ref,similarity\r\nnurse,staff nurse,1\r\nchef,cook,0.5\r\n",
])
def test_pairs_in_any_common_dialect_read_the_same(tmp_path, content):
    path = tmp_path / "p.csv"
    path.write_text(content, encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.base == ["nurse", "chef"] and pairs.ref == ["staff nurse", "cook"]
    assert pairs.similarity.tolist() == [1.0, 0.5]


def test_a_row_longer_than_the_header_names_its_line(tmp_path):
    # pandas would otherwise shift the first row onto an index: base 'b', ref '1', score 'x'
    path = tmp_path / "p.csv"
    path.write_text("base,ref,similarity\nchef, head,cook,1\nnurse,staff nurse,1\n")
    with pytest.raises(BadInputError, match=r"line 2 has 4 fields but the header has 3"):
        read_pairs(path)
    path.write_text("base,ref,similarity\nnurse,staff nurse,1\nchef, head,cook,1\n")
    with pytest.raises(BadInputError, match=r"line 3 has 4 fields but the header has 3"):
        read_csv(path, "pairs file")


@pytest.mark.parametrize("content, line", [
    ("text\nnurse\nchef, head\n", 3),
    ("text\nchef, head\nnurse\n", 2),  # the first row too (pandas only warns there)
])
def test_a_text_column_split_by_an_unquoted_comma_fails_instead_of_being_cut(tmp_path, content,
                                                                              line):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(BadInputError, match=rf"line {line} has 2 fields but the header has 1"):
        list(text_chunks(str(path)))
    path.write_text('text\nnurse\n"chef, head"\n')
    assert [t for chunk in text_chunks(str(path)) for t in chunk] == ["nurse", "chef, head"]


def test_a_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("base,base,similarity\na,b,1\n")
    with pytest.raises(BadInputError, match="names the column 'base' twice"):
        read_pairs(path)
    path.write_text("title;title\nx;y\n")
    with pytest.raises(BadInputError, match="names the column 'title' twice"):
        list(text_chunks(str(path), "title"))


def test_text_and_score_columns_must_be_distinct(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("base,ref,similarity\na,b,1\n")
    with pytest.raises(BadInputError, match="names 'base' twice"):
        read_pairs(path, text_columns=("base", "base"))
    with pytest.raises(BadInputError, match="also a text column"):
        read_pairs(path, score_column="ref")


def test_mined_pairs_keep_the_input_dialect_and_train_reads_them(tmp_path, monkeypatch):
    import numpy as np

    import domain_tune.embedding as embedding
    from domain_tune.datasets.mining import mine_pairs_file

    vectors = {"nurse": [1, 0, 0], "staff nurse": [1, 0.1, 0], "chef": [0, 1, 0],
               "cook": [0, 1, 0.1]}
    monkeypatch.setattr(embedding, "encode", lambda model, texts, **kw: np.array(
        [vectors[t] for t in texts], dtype="float32"))  # mining only embeds
    path = tmp_path / "p.csv"
    path.write_text("base;ref;similarity\nnurse;staff nurse;1,0\nchef;cook;1,0\n"
                    "chef;nurse;0,5\n", encoding="utf-8")
    for name in ("m.csv", "m.tsv"):
        mine_pairs_file(str(path), str(tmp_path / name), None, depth=5, seed=0)
        again = read_pairs(tmp_path / name)
        assert again.similarity.tolist() == [1.0, 1.0, 0.5]
        assert again.negative[:2] == ["cook", "staff nurse"]
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "base;ref;similarity;negative"


def test_a_text_file_saved_with_a_bom_yields_no_bom_in_its_first_text(tmp_path):
    """Notepad saves UTF-8 with a byte-order mark; it is not part of the first line's text."""
    from domain_tune.datasets.texts import count_texts, text_chunks

    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffdata scientist\nnurse\n".encode("utf-8"))
    assert [t for chunk in text_chunks(str(path)) for t in chunk] == ["data scientist", "nurse"]
    assert count_texts(str(path)) == 2


def test_utf16_text_is_named_as_such(tmp_path):
    from domain_tune.datasets.files import check_text_file

    path = tmp_path / "p.csv"
    path.write_bytes("base\tref\tsimilarity\na\tb\t1\n".encode("utf-16"))  # with its BOM
    with pytest.raises(BadInputError, match="is UTF-16 text; re-save it as UTF-8"):
        check_text_file(str(path), "pairs file")


def test_spaces_around_header_names_are_not_part_of_the_names(tmp_path):
    """A header typed as 'base, ref, similarity' named the columns ' ref' and ' similarity',
    and the file was refused for having no column 'ref'."""
    from domain_tune.matching import read_corpus

    path = tmp_path / "p.csv"
    path.write_text("base, ref, similarity\nnurse,staff nurse,1\nchef,cook,0.5\n", encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.ref == ["staff nurse", "cook"] and pairs.similarity.tolist() == [1.0, 0.5]
    corpus = tmp_path / "c.csv"
    corpus.write_text(" label , id \nnurse,N1\nchef,C1\n", encoding="utf-8")
    assert [t for chunk in text_chunks(str(corpus), "label") for t in chunk] == ["nurse", "chef"]
    assert read_corpus(corpus, "label", "id") == (["nurse", "chef"], ["N1", "C1"])


def test_a_pandas_index_column_is_not_the_text_column(tmp_path):
    """pandas' to_csv writes its index as a first, unnamed column: the texts are the only
    named column (was: 'has 2 columns; choose one with --column')."""
    import pandas as pd

    from domain_tune.matching import read_corpus

    path = tmp_path / "titles.csv"
    pd.DataFrame({"title": ["NA", "None", "00123", "nurse"]}).to_csv(path)
    assert path.read_text().splitlines()[:2] == [",title", "0,NA"]
    texts = ["NA", "None", "00123", "nurse"]  # as written: no NaN, no number
    assert [t for chunk in text_chunks(str(path)) for t in chunk] == texts
    assert read_corpus(path) == (texts, [2, 3, 4, 5])
    path.write_text(",title,extra\n0,a,b\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="has 3 columns; choose one with --column"):
        list(text_chunks(str(path)))
    # options without a --column of their own say what they take instead
    with pytest.raises(BadInputError, match=r"^--texts .* has 3 columns; give one text per line, "
                                            "or a CSV of one column$"):
        list(text_chunks(str(path), what="--texts"))


def test_rows_in_messages_are_the_spreadsheet_rows_and_empty_rows_are_blank_lines(tmp_path):
    """pandas skips blank lines, so 'row 3' named the third pair, not the file's row 3; and
    a row of empty cells (',,', as spreadsheets export an emptied row) was an 'empty text'."""
    path = tmp_path / "p.csv"
    path.write_text("base,ref,similarity\nnurse,staff nurse,1\n\n,,\n\"chef\nde partie\",cook,2\n",
                    encoding="utf-8")
    with pytest.raises(BadInputError, match=r"outside \[0, 1\] in row 5;"):
        read_pairs(path)
    path.write_text("base,ref,similarity\nnurse,staff nurse,1\n,,\n\nchef,cook,0.5\n,,\n",
                    encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.base == ["nurse", "chef"] and pairs.similarity.tolist() == [1.0, 0.5]


def test_mining_keeps_the_rows_that_train_reads(tmp_path, monkeypatch):
    import numpy as np

    import domain_tune.embedding as embedding
    from domain_tune.datasets.mining import mine_pairs_file

    vectors = {"nurse": [1, 0, 0], "staff nurse": [1, 0.1, 0], "chef": [0, 1, 0],
               "cook": [0, 1, 0.1]}
    monkeypatch.setattr(embedding, "encode", lambda model, texts, **kw: np.array(
        [vectors[t] for t in texts], dtype="float32"))

    path = tmp_path / "p.csv"
    path.write_text("base,ref,similarity\nnurse,staff nurse,1\n,,\nchef,cook,1\n", encoding="utf-8")
    mine_pairs_file(str(path), str(tmp_path / "m.csv"), None, depth=5, seed=0)
    mined = read_pairs(tmp_path / "m.csv")
    assert mined.base == ["nurse", "chef"] and mined.negative == ["cook", "staff nurse"]


@pytest.mark.parametrize("prefix_lines, block", [(0, 1 << 20), (3, 1 << 20), (30_000, 1 << 20),
                                                 (30_000, 7)])
def test_the_first_non_utf8_byte_is_found_in_the_whole_file(tmp_path, prefix_lines, block):
    from domain_tune.datasets.files import first_non_utf8

    path = tmp_path / "t.txt"
    good = "".join(f"caf\u00e9 \u65e5\u672c {i}\n" for i in range(prefix_lines)).encode("utf-8")
    path.write_bytes(good + b"ok \xe9 then\nmore\n")
    assert first_non_utf8(path, block) == (len(good) + 3, prefix_lines + 1)
    path.write_bytes(good)
    assert first_non_utf8(path, block) is None


@pytest.mark.parametrize("name, body, message", [
    ("t.txt", "".join(f"title {i}\n" for i in range(30_000)) + "x\x00y\n",
     "line 30,001 holds a NUL byte"),
    ("t.csv", "title\n" + "".join(f"title {i}\n" for i in range(30_000)) + "x\x00y\n",
     "row 30,002 holds a NUL byte"),
])
def test_a_nul_byte_past_the_sniffed_start_is_refused(tmp_path, name, body, message):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(BadInputError, match=message):
        list(text_chunks(str(path)))
