"""Reading a retrieval benchmark: queries and a corpus with ids."""

import pytest

from domain_tune.datasets.retrieval_set import read_retrieval_set
from domain_tune.errors import BadInputError


def test_read_retrieval_set(tmp_path):
    (tmp_path / "q.csv").write_text("query,conceptUri\nchef de cuisine,c9\nanalyst,c2\nanalyst,c3\n",
                                    encoding="utf-8")
    (tmp_path / "c.csv").write_text("label,conceptUri\nchef,c9\ndata analyst,c2\nbusiness analyst,c3\n",
                                    encoding="utf-8")
    data = read_retrieval_set(tmp_path / "q.csv", tmp_path / "c.csv")
    assert data.queries == ["chef de cuisine", "analyst", "analyst"]
    assert data.query_ids == ["c9", "c2", "c3"] and data.corpus_ids == ["c9", "c2", "c3"]
    assert read_retrieval_set(tmp_path / "q.csv", tmp_path / "c.csv", limit=1).queries == [
        "chef de cuisine"]
    (tmp_path / "bad.csv").write_text("query,conceptUri\nx,c9\ny,c77\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="row 3, 'c77'"):
        read_retrieval_set(tmp_path / "bad.csv", tmp_path / "c.csv")
    (tmp_path / "empty_cell.csv").write_text('query,conceptUri\n" ",c9\n', encoding="utf-8")
    with pytest.raises(BadInputError, match="row 2 has an empty query"):
        read_retrieval_set(tmp_path / "empty_cell.csv", tmp_path / "c.csv")
    with pytest.raises(BadInputError, match=r"no column 'title' \(--label-column\)"):
        read_retrieval_set(tmp_path / "q.csv", tmp_path / "c.csv", label_column="title")
