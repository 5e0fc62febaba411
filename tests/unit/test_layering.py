"""The import rules of the code base, checked on the source: layers point one way, no cycles.

* ``models`` and ``schemas`` never import ``stream_app``;
* only ``stream_app/worker`` and the web views (``stream_app/web``) import Faust;
* ``stream_app/core`` imports no Kafka client (nor Faust);
* no module imports itself back through others (imports under ``if TYPE_CHECKING:`` are type
  hints only and do not count).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGES = ("stream_app", "models", "schemas")
FAUST = ("faust", "mode")
KAFKA = ("kafka", "aiokafka", "faust", "mode")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """Every module ``name`` imports (at any depth of the file), as dotted names."""
    is_pkg = path.name == "__init__.py"
    skip: set[int] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub


def graph() -> dict[str, set[str]]:
    src = sources()
    known = set(src)
    return {name: set(imports(path, name, known)) for name, path in src.items()}


def top(module: str) -> str:
    return module.split(".")[0]


def offenders(rule) -> list[str]:
    return sorted(f"{m} imports {t}" for m, targets in graph().items() for t in targets if rule(m, t))


def test_models_and_schemas_never_import_the_application():
    assert not offenders(lambda m, t: top(m) in ("models", "schemas") and top(t) == "stream_app")


def test_only_the_worker_and_the_web_views_import_faust():
    allowed = ("stream_app.worker", "stream_app.web")
    assert not offenders(lambda m, t: top(t) in FAUST and not m.startswith(allowed))


def test_core_imports_no_kafka_client():
    assert not offenders(lambda m, t: m.startswith("stream_app.core") and top(t) in KAFKA)


def test_no_import_cycles():
    g = graph()
    internal = {m: {t for t in ts if t in g and t != m} for m, ts in g.items()}
    # a module importing a package also runs the package's __init__: count that edge too
    for m, ts in internal.items():
        for t in list(ts):
            parts = t.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in g and parent != m and not m.startswith(parent + "."):
                    ts.add(parent)
    cycles = find_cycles(internal)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def find_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan).

    >>> find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b', 'a']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(_cycle_in(sorted(comp), g))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def _cycle_in(comp: list[str], g: dict[str, set[str]]) -> list[str]:
    members, start = set(comp), comp[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(t for t in g[path[-1]] if t in members)
        back = [t for t in nxt if t == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [t for t in nxt if t not in seen]
        if not fresh:
            return [*path, nxt[0] if nxt else start]
        path.append(fresh[0])
        seen.add(fresh[0])


@pytest.mark.parametrize("rule", ["cycle", "faust"])
def test_the_checks_catch_a_violation(tmp_path, rule):
    """The rules above would fail on a tree that breaks them (the checks can fail)."""
    if rule == "cycle":
        assert find_cycles({"x.a": {"x.b"}, "x.b": {"x.c"}, "x.c": {"x.a"}})
    else:
        mod = tmp_path / "m.py"
        mod.write_text("import faust.web\nfrom faust import App\n")
        assert set(imports(mod, "stream_app.core.m", set())) == {"faust.web", "faust"}
