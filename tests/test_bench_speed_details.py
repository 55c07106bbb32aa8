"""The detailed speed benchmark's pieces that run without the model: its command line, the
repetition helper and the report files (the sections themselves are a benchmark, not a test)."""

import json
import subprocess
import sys

from scripts.bench_speed.details import common, report
from scripts.bench_speed.details.settings import SECTIONS
from tests.conftest import ROOT


def _details(*args):
    return subprocess.run([sys.executable, "-m", "scripts.bench_speed.details", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_help_lists_every_section():
    result = _details("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m scripts.bench_speed.details")
    for name in SECTIONS:
        assert name in result.stdout


def test_unknown_section_is_one_line_and_exit_code_2():
    result = _details("--sections", "throughput,nope", "--out-dir", str(ROOT / "no-such-dir"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "error: unknown section 'nope'; choose from " + ", ".join(SECTIONS))
    assert not (ROOT / "no-such-dir").exists()


def test_medians_warm_up_once_then_round_robin():
    calls = []
    out = common.medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4  # one warm-up call each, then 3 rounds in turn
    assert set(out) == {"a", "b"}
    assert all(isinstance(v, float) and v >= 0 for v in out.values())


def test_report_writes_markdown_and_json_with_the_same_keys(tmp_path):
    section = common.section_result(
        "1. A section", ["what", "seconds"], [["x", common.fmt(1.234, 2)]], ["a note"],
        {"seconds": [1.2, 1.3]},
        targets=[{"name": "x fast", "target": "<= 2 s", "measured": "1.23 s", "met": True}],
        extra_tables=[{"title": "More", "header": ["k"], "rows": [["v"]], "notes": ["n"]}])
    section.update(load=[0.5, 0.7], background_cores=[0.1, 0.3], seconds=12.0)
    meta = {"date": "2026-11-28T12:00:00", "command": "python -m scripts.bench_speed.details",
            "quick": True, "settings": {"quiet_wait": 10},
            "machine": {"cores": 2, "cpu_model": "cpu", "memory_gb": 24.0, "machine": "x86_64",
                        "python": "3.11"},
            "versions": {"tensorflow": "2"}, "load_start": [0.5, 0.4, 0.3],
            "load_end": [0.7, 0.5, 0.3], "total_seconds": 60.0, "strategies": ["trainable"],
            "library": {"commit": "abc1234", "domain_tune_modified": False},
            "findings": ["- a finding"]}
    report.write_report(tmp_path, meta, {"sts": section})
    md = (tmp_path / "speed_details.md").read_text(encoding="utf-8")
    assert "| x fast | <= 2 s | 1.23 s | met |" in md
    assert "| x | 1.23 |" in md
    assert "### More" in md and "- a finding" in md
    assert "median 0.20, max 0.30" in md  # cores used by others during the section
    data = json.loads((tmp_path / "speed_details.json").read_text(encoding="utf-8"))
    assert set(data) == {"meta", "targets", "sections"}
    assert data["targets"][0]["met"] is True
    assert set(data["sections"]["sts"]) == {"title", "header", "rows", "notes", "extra_tables",
                                            "load", "seconds", "background_cores", "data"}
    assert data["sections"]["sts"]["data"] == {"seconds": [1.2, 1.3]}
