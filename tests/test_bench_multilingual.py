"""The multilingual benchmark's pieces that run without the model: which earlier results it may
reuse, the language check, the choice on validation concepts, the targets and the report."""

import json

import pytest

from scripts import bench_multilingual as bm

PAIRS = ("en->en", "fr->en", "fr->fr", "en->fr")


def measurement(top1=0.5, sts=0.83, mono=0.75, cross=0.73, drop=0.0):
    """A measurement as ``bench_multilingual.measure`` writes it: every top-1 ``top1``, the
    panels at ``mono`` / ``cross``, one pair (cross en-de) ``drop`` lower."""
    retrieval = {part: {p: {"top1": top1, "n": 100, "corpus": 3000} for p in PAIRS} for part in ("validation", "test")}

    def panel():
        mono_langs = {lang: {"pearson": mono} for lang in ("en", "de", "fr")}
        cross_pairs = {"en-de": {"pearson": cross - drop}, "en-fr": {"pearson": cross}}
        return {"mono": mono_langs, "cross": cross_pairs,
                "mean": {"mono": mono, "cross": cross - drop / 2, "translation": 0.9}}

    return {"retrieval": retrieval, "retrieval_all": retrieval["test"], "sts_pearson": sts,
            "sts_spearman": sts, "panel_heldout": panel(), "panel_dev": panel()}


def args(**overrides):
    return bm.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in overrides.items()])


DATA = {"esco_sha256": "a", "esco_fr_sha256": "b", "parallel_csv_sha256": "c",
        "train_csv_sha256": {"en": "d", "fr": "e"}}


def previous(tmp_path, name="fr+contrastive", spec=None, alphas=(0.8,), data=DATA, **recipe):
    models = {"base": measurement(0.4), name: measurement(0.5)}
    models |= {f"{name}+wise{a:g}": measurement(0.48) for a in alphas}
    r = {"models": models, "data": data, "panel_limit": None,
         "recipe": {k: getattr(args(), k) for k in bm.RECIPE} | recipe,
         "variants": {name: {"spec": spec or bm.VARIANTS[name], "seconds": 10.0, "train_pairs": 5,
                             "epochs_run": 3}},
         "machine": {"date": "2026-12-01T10:00:00+00:00", "commit": "abc1234"},
         "commands": {"bench": "python scripts/bench_multilingual.py --variants fr+contrastive"}}
    path = tmp_path / "previous.json"
    path.write_text(json.dumps(r), encoding="utf-8")
    return str(path)


def test_reuses_only_what_was_measured_alike(tmp_path):
    same = previous(tmp_path)
    found = bm.reusable(args(), DATA, [same])
    assert [p for p, _ in found] == [same]
    taken, models = bm.reused_variant(found, "fr+contrastive", [0.8])
    assert set(models) == {"fr+contrastive", "fr+contrastive+wise0.8"}
    assert taken["measured"] == {"date": "2026-12-01T10:00:00+00:00", "commit": "abc1234",
                                 "command": "python scripts/bench_multilingual.py --variants fr+contrastive"}
    assert taken["reused_from"] == same and taken["seconds"] == 10.0
    # an interpolation weight it never measured, or another variant: train again
    assert bm.reused_variant(found, "fr+contrastive", [0.8, 0.9]) is None
    assert bm.reused_variant(found, "fr", [0.8]) is None
    # other data, another recipe or another panel: not reused at all
    assert bm.reusable(args(), DATA | {"parallel_csv_sha256": "x"}, [same]) == []
    assert bm.reusable(args(epochs=1), DATA, [same]) == []
    assert bm.reusable(args(panel_limit=50), DATA, [same]) == []


def test_a_variant_whose_spec_changed_is_not_reused(tmp_path):
    path = previous(tmp_path, spec={**bm.VARIANTS["fr+contrastive"], "align_weight": 2.0})
    assert bm.reused_variant(bm.reusable(args(), DATA, [path]), "fr+contrastive", [0.8]) is None


def test_panel_check_flags_one_pair_below_the_base():
    base = measurement()
    assert bm.panel_check(measurement(mono=0.76, cross=0.74), base)["kept"]
    dropped = bm.panel_check(measurement(mono=0.76, cross=0.74, drop=0.016), base)
    # both means still above the base, but cross en-de is 0.006 below it
    assert dropped["mono_mean"] > 0 and dropped["cross_mean"] > 0
    assert dropped["worst"] == "cross en-de" and dropped["worst_change"] == pytest.approx(-0.006)
    assert not dropped["kept"]
    assert not bm.panel_check(measurement(mono=0.76, cross=0.74, sts=0.82), base)["kept"]  # English STS-B


def test_choice_is_the_best_french_top1_among_models_that_keep_the_languages():
    base = measurement(0.4)
    models = {"base": base, "fr": measurement(0.6, drop=0.02), "fr+wise0.8": measurement(0.55),
              "fr+contrastive": measurement(0.5)}
    assert bm.choose(models, ["fr", "fr+wise0.8", "fr+contrastive"], base) == "fr+wise0.8"
    # when none keeps them, the best of all
    assert bm.choose(models | {"fr+wise0.8": measurement(0.55, drop=0.02)}, ["fr", "fr+wise0.8"], base) == "fr"


def test_report_states_targets_and_where_reused_variants_come_from(tmp_path):
    base = measurement(0.40)
    fr = measurement(0.49)
    fr["retrieval"]["test"]["en->en"]["top1"] = 0.66
    en = measurement(0.42)
    en["retrieval"]["test"]["en->en"]["top1"] = 0.50
    r = {"models": {"base": base, "en": en, "fr": fr}, "alpha": 0.8,
         "variants": {"en": {"spec": bm.VARIANTS["en"], "seconds": 300.0, "train_pairs": 1000, "epochs_run": 3,
                             "measured": {"date": "2026-12-01", "commit": "abc1234"},
                             "reused_from": "multilingual.json"},
                      "fr": {"spec": bm.VARIANTS["fr"], "seconds": 500.0, "train_pairs": 2000, "epochs_run": 3}},
         "recipe": {k: getattr(args(), k) for k in bm.RECIPE},
         "chosen": {"english_labels": "en", "french_labels": "fr"},
         "commands": {"en": "domain-tune pairs esco", "fr": "domain-tune pairs esco --labels fr=F",
                      "parallel": "domain-tune parallel-sentences", "bench": "python scripts/bench_multilingual.py"},
         "data": DATA, "wall_seconds": 12.0,
         "machine": {"cpu_model": "CPU", "cores": 2, "simd_flags": ["avx2"], "python": "3.11",
                     "date": "2026-12-07", "commit": "def5678"}}
    r["checks"] = {n: bm.panel_check(m, base) for n, m in r["models"].items() if n != "base"}
    text = bm.render(r)
    assert "fr->en top-1 >= base + 0.08: +0.0900 (met)" in text
    assert "English top-1 >= 0.65: 0.6600 (met)" in text
    # English-only: fr->en +0.02 against en->en +0.10 is less than half
    assert "fr->en gain >= half the English gain: +0.0200 against +0.1000 (not met)" in text
    assert "(`--reuse`): en (2026-12-01, commit abc1234)." in text
    # one row per model, the changes against the base beside each figure
    assert "| English labels | 0.5000 (+0.1000) | 0.4200 (+0.0200) |" in text
    assert "fr (2026" not in text  # trained in this run


def test_report_of_english_variants_only():
    base, en = measurement(0.40), measurement(0.45)
    r = {"models": {"base": base, "en": en}, "alpha": 0.8,
         "variants": {"en": {"spec": bm.VARIANTS["en"], "seconds": 3.0, "train_pairs": 10, "epochs_run": 3}},
         "recipe": {k: getattr(args(), k) for k in bm.RECIPE},
         "chosen": {"english_labels": "en", "french_labels": None},
         "checks": {"en": bm.panel_check(en, base)},
         "commands": {"en": "a", "fr": "b", "parallel": "c", "bench": "d"}, "data": DATA, "wall_seconds": 1.0,
         "machine": {"cpu_model": "CPU", "cores": 2, "simd_flags": [], "python": "3.11", "date": "d", "commit": "c"}}
    text = bm.render(r)
    assert "with French labels\n**none (no variant in this run)**" in text
    assert "with French labels, fr->en" not in text
