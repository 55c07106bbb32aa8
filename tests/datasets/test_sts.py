import pytest

from domain_tune.datasets.sts import load_split, read_sts, resolve_sts_dir
from domain_tune.errors import BadInputError

LINE = "main-captions\tMSRvid\t2012test\t0001\t{score}\tA man.\tA woman.{extra}\n"


def _write(tmp_path, lines, name="sts-dev.csv"):
    path = tmp_path / name
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_reads_lines_with_extra_fields(tmp_path):
    path = _write(tmp_path, [LINE.format(score="5.0", extra=""),
                             LINE.format(score="1.5", extra="\tlicence\tsource")])
    data = read_sts(str(path))
    assert data.scores == [5.0, 1.5]
    assert data.sentences2 == ["A woman.", "A woman."]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("only\tthree\tfields\n", ":2: expected at least 7"),
        (LINE.format(score="high", extra=""), ":2: score 'high' is not a number"),
        (LINE.format(score="7", extra=""), ":2: score 7 is outside 0-5"),
    ],
)
def test_malformed_line_is_an_error_not_a_skip(tmp_path, bad, message):
    path = _write(tmp_path, [LINE.format(score="5.0", extra=""), bad])
    with pytest.raises(BadInputError, match=message):
        read_sts(str(path))


def test_missing_split_file_names_it(tmp_path):
    _write(tmp_path, [LINE.format(score="5.0", extra="")])
    with pytest.raises(BadInputError, match="has no sts-test.csv"):
        load_split("test", str(tmp_path))


def test_env_var_and_missing_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAIN_TUNE_STS_DIR", str(tmp_path))
    assert resolve_sts_dir() == str(tmp_path)
    with pytest.raises(BadInputError, match="not a directory"):
        resolve_sts_dir(str(tmp_path / "nope"))


def test_offline_download_names_sts_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("DOMAIN_TUNE_STS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    import domain_tune.datasets.sts as sts

    monkeypatch.setattr(sts, "ARCHIVE_URL", "http://127.0.0.1:9/Stsbenchmark.tar.gz")
    with pytest.raises(BadInputError, match="--sts-dir"):
        resolve_sts_dir()
    assert not (tmp_path / "domain-tune").exists()  # no empty cache folder left behind


def test_real_dev_split_has_every_pair(sts_dir):
    data = load_split("dev", str(sts_dir))
    assert len(data) == 1500
    train = load_split("train", str(sts_dir))
    assert len(train) == 5749
