import pytest

from domain_tune.datasets.parallel import read_parallel
from domain_tune.errors import BadInputError


def _write(tmp_path, text, name="par.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_first_two_columns_by_default(tmp_path):
    path = _write(tmp_path, 'en,de,id\n"a cat, asleep",eine Katze,1\nrain,Regen,2\n')
    par = read_parallel(path)
    assert par.columns == ("en", "de") and len(par) == 2
    assert par.source == ["a cat, asleep", "rain"] and par.translation == ["eine Katze", "Regen"]


def test_named_columns_and_semicolons(tmp_path):
    path = _write(tmp_path, "id;fr;en\n1;un chat;a cat\n")
    par = read_parallel(path, "en,fr")
    assert (par.source, par.translation) == (["a cat"], ["un chat"])


@pytest.mark.parametrize(
    "text, columns, message",
    [
        ("en\na\n", None, "has 1 column; it needs a source and a translation column"),
        ("en,de\n", None, "holds no sentences, only a header"),
        ("en,de\na,b\n", "en,fr", "has no column 'fr' (columns: en, de)"),
        ("en,de\na,b\nc,\n", None, "empty text in row 3 (the header is row 1)"),
        ("en,de\na,b\n", "en", "give two column names"),
        ("", None, "is empty"),
    ],
)
def test_errors(tmp_path, text, columns, message):
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_parallel(_write(tmp_path, text), columns)
