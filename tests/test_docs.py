"""The README is a front page over docs/: every link resolves, every page is reachable, and the
commands CI runs are the README's own."""

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [m.group(1) for m in LINK.finditer(text)
            if not re.match(r"[a-z][a-z0-9+.-]*://|mailto:", m.group(1))]


def broken(path):
    out = []
    for target in links(path):
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            out.append(f"{path.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{path.name}: {target} (no such heading)")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page):
    assert broken(page) == []


def test_the_checker_finds_a_broken_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n[x](b.md) [y](#nowhere) [z](#top) [w](https://x.org)\n",
                                   encoding="utf-8")
    assert broken(tmp_path / "a.md") == ["a.md: b.md (no such file)", "a.md: #nowhere (no such heading)"]
    assert slug("Hybrid retrieval: lexical fusion and richer concepts") == \
        "hybrid-retrieval-lexical-fusion-and-richer-concepts"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160
    text = "\n".join(lines)
    blocks = FENCE.findall(text)
    assert all(len(line) <= 100 for block in blocks for line in block.splitlines())


def ci_block(name):
    """The README block as .ci/run extracts it (its own awk, run here)."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    function = re.search(r"^readme_command\(\) \{.*?^\}", script, re.M | re.S).group(0)
    out = subprocess.run(["bash", "-c", f"{function}\nreadme_command {name}"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_ci_runs_the_readme_blocks_whole():
    install, test = ci_block("install"), ci_block("test")
    assert "pip install" in install and "-c constraints.txt" in install
    assert len(install.strip().splitlines()) > 1 and "```" not in install  # every line, no fence
    assert install.rstrip().endswith("--multilingual-dir ../shared/data/stsb-multi-mt")
    assert test.strip() == ".venv/bin/python -m pytest -n 2 --dist worksteal"
