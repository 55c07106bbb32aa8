import pytest

from domain_tune.datasets import stsb_multi
from domain_tune.datasets.stsb_multi import (
    file_name, find_languages, load_multilingual, parse_languages, read_stsb_file,
    resolve_multilingual_dir,
)
from domain_tune.errors import BadInputError

ROWS = {
    "en": ['A man is dancing.,"A man, hat on, dances.",5.0', "A cat sleeps.,A dog runs.,0.5",
           "A child rides a horse.,A kid rides a horse.,4.75", "It rains.,The sun shines.,1"],
    "de": ['Ein Mann tanzt.,"Ein Mann, mit Hut, tanzt.",5.0', "Eine Katze schläft.,Ein Hund rennt.,0.5",
           "Ein Kind reitet.,Ein Kind reitet.,4.75", "Es regnet.,Die Sonne scheint.,1"],
    "ja": ["男が踊る。,男が踊っている。,5.0", "猫が寝る。,犬が走る。,0.5",
           "子供が馬に乗る。,子供が馬に乗る。,4.75", "雨が降る。,太陽が輝く。,1"],
}


def write_dir(folder, rows=ROWS, split="dev"):
    folder.mkdir(parents=True, exist_ok=True)
    for lang, lines in rows.items():
        (folder / file_name(lang, split)).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_reads_quoted_commas_and_scores(tmp_path):
    data = read_stsb_file(write_dir(tmp_path) / "stsb-en-dev.csv")
    assert data.sentences2[0] == "A man, hat on, dances."
    assert data.scores == [5.0, 0.5, 4.75, 1.0]
    assert len(data) == 4


def test_languages_found_pivot_first(tmp_path):
    write_dir(tmp_path)
    (tmp_path / "README.md").write_text("x")
    (tmp_path / "stsb-fr-train.csv").write_text("a,b,1\n")
    assert find_languages(tmp_path, "dev") == ["en", "de", "ja"]
    assert find_languages(tmp_path, "train") == ["fr"]


def test_load_all_and_some_languages(tmp_path):
    write_dir(tmp_path)
    data = load_multilingual(str(tmp_path))
    assert data.languages == ["de", "ja"] and data.pivot == "en" and len(data) == 4
    assert data.data["ja"].sentences1[1] == "猫が寝る。"
    some = load_multilingual(str(tmp_path), languages="ja,en", limit=2)
    assert some.languages == ["ja"] and len(some) == 2 and len(some.data["en"]) == 2


def test_own_language_codes(tmp_path):
    write_dir(tmp_path, {"en": ROWS["en"], "pt_br": ROWS["de"]})
    assert load_multilingual(str(tmp_path)).languages == ["pt_br"]


@pytest.mark.parametrize("value, expected", [("de, fr,de", ["de", "fr"]), ("all", None),
                                             (None, None), (["ja"], ["ja"])])
def test_parse_languages(value, expected):
    assert parse_languages(value) == expected


@pytest.mark.parametrize("value", ["de,", "en-de", "d e"])
def test_parse_languages_refuses(value):
    with pytest.raises(BadInputError, match="language"):
        parse_languages(value)


@pytest.mark.parametrize(
    "rows, languages, message",
    [
        ({**ROWS, "de": ROWS["de"][:3]}, None,
         "stsb-de-dev.csv has 3 rows but stsb-en-dev.csv has 4: the files are not row-aligned translations"),
        ({**ROWS, "de": [ROWS["de"][1], ROWS["de"][0]] + ROWS["de"][2:]}, None,
         "row 1 of stsb-de-dev.csv has score 0.5 but stsb-en-dev.csv has 5: the files are not row-aligned translations"),
        (ROWS, "de,fr", "no stsb-fr-dev.csv in {d} (languages there for dev: en, de, ja)"),
        ({"de": ROWS["de"]}, None, "no stsb-en-dev.csv in {d} (languages there for dev: de)"),
        ({"en": ROWS["en"]}, None, "{d} holds only stsb-en-dev.csv; another language is needed"),
        (ROWS, "en", "--languages names only en, the language the others are compared with; "
                     "name another language"),
    ],
)
def test_misaligned_or_missing_files(tmp_path, rows, languages, message):
    write_dir(tmp_path, rows)
    with pytest.raises(BadInputError) as e:
        load_multilingual(str(tmp_path), languages=languages)
    assert str(e.value) == message.format(d=tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,5\nc,d\n", "{p}:2: expected 3 comma-separated fields (sentence1, sentence2, score), "
                         "got 2; quote texts that contain commas"),
        ("a,b,5\nc,d,high\n", "{p}:2: score 'high' is not a number"),
        ("a,b,5\nc,d,5.5\n", "{p}:2: score 5.5 is outside 0-5"),
        ("a,b,nan\n", "{p}:1: score nan is outside 0-5"),
        ("\n\n", "STS file {p} is empty"),
        ('"",b,1\nc,d,2\n', "{p}:1: sentence1 is empty; every pair needs two texts"),
        ("a,b,1\nc,  ,2\n", "{p}:2: sentence2 is empty; every pair needs two texts"),
    ],
)
def test_bad_rows(tmp_path, text, message):
    path = tmp_path / "stsb-en-dev.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError) as e:
        read_stsb_file(path)
    assert str(e.value) == message.format(p=path)


def test_not_utf8(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes("caf\u00e9,b,5\n".encode("latin-1"))
    with pytest.raises(BadInputError, match="is not valid UTF-8"):
        read_stsb_file(path)


def test_option_env_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(stsb_multi.ENV_VAR, str(tmp_path))
    assert resolve_multilingual_dir() == str(tmp_path)
    with pytest.raises(BadInputError, match="--multilingual-dir .*nope: not a directory"):
        resolve_multilingual_dir(str(tmp_path / "nope"))
    monkeypatch.delenv(stsb_multi.ENV_VAR)
    assert resolve_multilingual_dir(fetch=False) is None
    write_dir(tmp_path / "cache" / "domain-tune" / "stsb-multi-mt")
    assert resolve_multilingual_dir(languages=["de"], fetch=False) == stsb_multi.cache_dir()


def test_offline_download_is_one_line_and_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(stsb_multi.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(stsb_multi, "BASE_URL", "http://127.0.0.1:9/data")
    with pytest.raises(BadInputError, match="could not be downloaded .*pass --multilingual-dir"):
        load_multilingual(languages="de")
    assert not (tmp_path / "domain-tune").exists()


def test_unpublished_language_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.delenv(stsb_multi.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(BadInputError, match="no published stsb-multi-mt data for xx"):
        load_multilingual(languages="de,xx")


def test_shared_data_is_aligned():
    from tests.conftest import shared_path

    folder = shared_path("stsb-multi-mt")
    data = load_multilingual(str(folder), "dev")
    assert data.languages == ["de", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh"]
    assert len(data) == 1500


def test_training_default_languages(tmp_path, monkeypatch):
    from domain_tune.datasets.stsb_multi import load_for_training

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(stsb_multi.ENV_VAR, raising=False)
    some = write_dir(tmp_path / "some", {"en": ROWS["en"], "ja": ROWS["ja"], "xx": ROWS["de"]})
    data, notice = load_for_training(str(some))
    assert data.languages == ["ja"] and notice is None  # those of de, ja, pl that are there
    own = write_dir(tmp_path / "own", {"en": ROWS["en"], "xx": ROWS["de"], "yy": ROWS["de"]})
    assert load_for_training(str(own))[0].languages == ["xx", "yy"]  # none of them: all
    assert load_for_training(str(own), "yy")[0].languages == ["yy"]
    assert load_for_training(str(own), "none") == (None, None)
    data, notice = load_for_training()
    assert data is None and notice.startswith("multilingual STS skipped: no stsb-multi-mt data found")
    cache = tmp_path / "cache" / "domain-tune" / "stsb-multi-mt"
    write_dir(cache, {"en": ROWS["en"], "fr": ROWS["de"]})
    assert load_for_training()[0] is None  # none of de, ja, pl cached: nothing is downloaded
    write_dir(cache, {"ja": ROWS["ja"]})
    assert load_for_training()[0].languages == ["ja"]  # those cached
    write_dir(cache, {"de": ROWS["de"], "pl": ROWS["de"]})
    data = load_for_training(limit=2)[0]
    assert data.languages == ["de", "ja", "pl"] and len(data) == 2
