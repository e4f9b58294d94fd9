"""How the library's modules import each other, and what importing them does.

- No import cycle among ``otel_threads`` modules, counting imports inside
  functions (where a cycle hides from a plain ``import``) and leaving out
  ``if TYPE_CHECKING:`` blocks (which never run).
- ``otel_threads.context`` and ``otel_threads.processor`` each import alone in a
  fresh interpreter, and ``context`` loads nothing of the processor's.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "otel_threads"
ROOT = PACKAGE.parent


def _modules() -> dict[str, Path]:
    """Every module of the package, its subpackages' included (a package is its
    ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "__pycache__" in parts or any(p.startswith(".") for p in parts):
            continue
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _module_names() -> set[str]:
    """Dotted names of the package's modules, sources and extensions alike."""
    names = set(_modules())
    for path in PACKAGE.rglob("*"):
        if path.suffix in (".c", ".so", ".pyd"):
            parts = path.relative_to(ROOT).parts
            names.add(".".join([*parts[:-1], path.name.split(".")[0]]))
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """The ``otel_threads`` modules that running ``tree`` may import (``modules``: the
    dotted names that are modules, so ``from a import b`` is module ``a.b`` or ``a``)."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "otel_threads")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = "otel_threads" + (f".{base}" if base else "")
            if base.split(".")[0] == "otel_threads":
                for alias in node.names:
                    name = f"{base}.{alias.name}"
                    out.add(name if name in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    names = _module_names()
    modules = _modules()
    return {
        name: {m for m in _imports(ast.parse(path.read_text()), names) if m != name}
        for name, path in modules.items()
    }


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_import_graph_sees_function_level_imports():
    # the checker itself: a cycle through an import inside a function is one
    tree = ast.parse("def f():\n    from otel_threads.processor import x\n")
    assert _imports(tree, {"otel_threads.processor"}) == {"otel_threads.processor"}
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from otel_threads.store import S\n"
    )
    assert _imports(tree, {"otel_threads.store"}) == set()
    tree = ast.parse("from otel_threads.otlp import decode, DecodeError\n")
    assert _imports(tree, {"otel_threads.otlp.decode"}) == {
        "otel_threads.otlp.decode",
        "otel_threads.otlp",
    }
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_otel_threads_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert "otel_threads.context" in graph and "otel_threads.processor" in graph
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph) or ())


def test_the_library_never_imports_the_collector():
    """The arrow runs one way: the collector uses the library, never the reverse (the
    CLI names the collector's commands and imports them only when one runs)."""
    graph = import_graph()
    for name, imported in graph.items():
        if not name.startswith("otel_threads.collector"):
            assert not {m for m in imported if m.startswith("otel_threads.collector")}, name
    assert any(m.startswith("otel_threads.otlp") for m in graph["otel_threads.collector.ingest"])


def test_context_does_not_import_the_processor_and_the_processor_imports_context():
    graph = import_graph()
    assert graph["otel_threads.context"] == {"otel_threads.ids"}  # ids: a leaf
    assert graph["otel_threads.ids"] == set()
    assert "otel_threads.context" in graph["otel_threads.processor"]


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("otel_threads.context", {"otel_threads.context", "otel_threads.ids"}),
        (
            "otel_threads.processor",
            {
                "otel_threads.context",
                "otel_threads.counted",
                "otel_threads.env",
                "otel_threads.ids",
                "otel_threads.processor",
            },
        ),
    ],
)
def test_each_module_imports_alone_in_a_fresh_interpreter(module, expected):
    # The package's __init__ imports both; a bare package object stands in for it,
    # so what loads is what the module itself needs.
    code = (
        "import importlib, json, sys, types\n"
        "pkg = types.ModuleType('otel_threads')\n"
        f"pkg.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['otel_threads'] = pkg\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('otel_threads.'))))\n"
    )
    done = _fresh(code)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == expected


_COUNT_PROVIDERS = """
import json
from opentelemetry.sdk import trace as sdk
built = []
init = sdk.TracerProvider.__init__
def counting(self, *args, **kwargs):
    built.append(1)
    init(self, *args, **kwargs)
sdk.TracerProvider.__init__ = counting
import otel_threads, otel_threads.context, otel_threads.processor, otel_threads.testing
after_import = len(built)
otel_threads.ThreadSpanProcessor()
print(json.dumps([after_import, len(built)]))
"""


def test_importing_otel_threads_builds_no_tracer_provider():
    # Nothing is probed at import: no TracerProvider, no span, in any process that
    # merely imports the library, nor when a default processor is made.
    done = _fresh(_COUNT_PROVIDERS)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, 0]


def test_the_library_reads_its_environment_in_one_place():
    """otel_threads.env is the one module that reads OTEL_THREADS_* variables; each one is
    in its table and in the README. (bootstrap reads the SDK's OTEL_EXPORTER_OTLP_*.)"""
    from otel_threads import env

    library = [path for path in PACKAGE.rglob("*.py") if "collector" not in path.parts]
    readers = {
        path.name for path in library if re.search(r"os\.environ|os\.getenv", path.read_text())
    }
    assert readers == {"env.py", "bootstrap.py"}, readers
    readme = (ROOT / "README.md").read_text()
    for var in env.VARIABLES:
        assert var.name in readme, var.name
    used = set()
    for path in library:
        used |= set(re.findall(r"OTEL_THREADS_[A-Z_]+", path.read_text()))
    assert used <= {v.name for v in env.VARIABLES}, used - {v.name for v in env.VARIABLES}
