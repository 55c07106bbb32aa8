"""The import graph of the package: no circles, and every arrow points down the layers.

Read from the source (every ``import`` and ``from ... import``, deferred ones inside
functions included), so an import added anywhere is checked without running it.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "domain_tune"

# Bottom to top; a module may import its own layer (no circles) and the layers below it.
LAYERS = [
    ["domain_tune.errors", "domain_tune._env", "domain_tune.text_values", "domain_tune.progress",
     "domain_tune.outputs", "domain_tune.similarity", "domain_tune.quantization",
     "domain_tune.seeding", "domain_tune.keras_archive", "domain_tune.training.recipe",
     "domain_tune.models.presets"],
    ["domain_tune.embedding"],
    ["domain_tune.models", "domain_tune.embedding_cache"],
    ["domain_tune.datasets", "domain_tune.corpus"],
    ["domain_tune.evaluation"],
    ["domain_tune.plotting", "domain_tune.export"],
    ["domain_tune.training"],
    ["domain_tune.indexing", "domain_tune.embedding_files", "domain_tune.beam"],
    ["domain_tune.matching", "domain_tune.serving"],
    ["domain_tune._keras_hook"],
    ["domain_tune.api"],
    ["domain_tune.cli", "domain_tune"],
]


def modules():
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name, path, known):
    """The package's modules that ``name`` imports (``from P import m`` counts as ``P.m`` when
    ``m`` is a module)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found |= subs if len(subs) == len(node.names) else subs | ({base} & set(known))
    return found - {name}


def layer(name):
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    return best[0] if best else None


GRAPH = {name: imports(name, path, set(modules())) for name, path in modules().items()}


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if layer(m) is None] == []


def test_every_import_points_to_the_same_layer_or_below():
    upward = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                    if layer(t) > layer(m))
    assert upward == []


def test_no_import_circles():
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert circles == []


def test_the_checker_sees_a_circle_and_an_upward_arrow():
    """The rules above would fail on a graph that breaks them."""
    assert layer("domain_tune.models.layers") < layer("domain_tune.training.fit")
    fake = {"domain_tune.embedding": {"domain_tune.api"}}
    assert [f"{m} -> {t}" for m, ts in fake.items() for t in ts if layer(t) > layer(m)]
    tree = imports("domain_tune.training.fit", PACKAGE / "training" / "fit.py", set(GRAPH))
    assert "domain_tune.training.siamese" in tree and "domain_tune.training.batches" in tree
