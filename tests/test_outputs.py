"""Checks of an --out before any work (domain_tune.outputs)."""

import pytest

from domain_tune.errors import BadInputError


def test_table_out_refuses_only_names_of_other_formats(tmp_path):
    from domain_tune.outputs import check_table_out

    for name in ("pairs_hn", "pairs.v2", "pairs.CSV", "pairs.tsv"):
        assert check_table_out(tmp_path / name, "pairs") == str(tmp_path / name)
    for name in ("pairs.jsonl", "pairs.NPY", "pairs.parquet"):
        with pytest.raises(BadInputError, match="name it"):
            check_table_out(tmp_path / name, "pairs")
    with pytest.raises(BadInputError, match=r"name it \*\.csv$"):
        check_table_out(tmp_path / "par.tsv", "parallel sentences", (".csv",))


def test_atomic_file_appears_complete_or_not_at_all(tmp_path):
    import os

    from domain_tune.outputs import atomic_file, temporary_name

    out = tmp_path / "out.csv"
    with atomic_file(out) as tmp:
        assert tmp == temporary_name(out) == f"{out}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write("a,b\n")
        assert not out.exists()  # not before the block ends
    assert out.read_text() == "a,b\n" and os.listdir(tmp_path) == ["out.csv"]
    with pytest.raises(RuntimeError):  # an error: the old file stays, nothing else is left
        with atomic_file(out, ".csv") as tmp:
            assert tmp.endswith(".csv")
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("stopped")
    assert out.read_text() == "a,b\n" and os.listdir(tmp_path) == ["out.csv"]
    with atomic_file(out) as tmp:  # replaces an existing file
        with open(tmp, "w") as f:
            f.write("new\n")
    assert out.read_text() == "new\n"
