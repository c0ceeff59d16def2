"""The package layout README's Layout section describes: no import cycle between the packages of ``elt/``
(type-only imports included) and no module over 400 lines."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ELT = Path(__file__).resolve().parents[1] / "elt"
MAX_LINES = 400


def package_imports() -> dict[str, set[str]]:
    """Top-level package (or module) of ``elt`` -> the other ones it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ELT.rglob("*.py"):
        source = path.relative_to(ELT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "elt":
                parts = node.module.split(".")
                targets = (
                    [parts[1]] if len(parts) > 1 else [a.name for a in node.names if a.name != "__version__"]
                )
                edges[source].update(t for t in targets if t != source)
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = package_imports()

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in reachable(b)})
    assert edges["run"] >= {"load", "transform", "forecast", "publish"}  # the graph is really read
    assert cycles == [], f"packages importing each other (directly or through others): {cycles}"


def test_no_module_over_400_lines() -> None:
    sizes = {
        str(p.relative_to(ELT)): len(p.read_text(encoding="utf-8").splitlines()) for p in ELT.rglob("*.py")
    }
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
