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
