"""Node selection with dbt's syntax and semantics.

A selection is a list of selectors (repeated ``--select`` values, or words separated by spaces): their union.
A selector is atoms joined by commas: their intersection. An atom is ``[@][N+]criterion[+N]`` where criterion
is ``name`` (wildcards allowed; a path when it contains ``/``), ``tag:x``, ``source:src[.table]``, ``path:dir``,
``config.materialized:incremental`` or ``resource_type:model|source|test``. ``+`` before adds ancestors, after
adds descendants (``2+`` / ``+1`` limit the depth), ``@`` adds descendants and all their ancestors.
``--exclude`` uses the same syntax and is subtracted. Tests follow the nodes they test (dbt's "eager"
indirect selection): a test runs when any node it depends on is selected.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Sequence

from elt.errors import ModelError
from elt.models.project import ModelProject

_ATOM = re.compile(r"^(?P<at>@)?(?:(?P<up>\d*)\+)?(?P<criterion>[^+@]+?)(?:\+(?P<down>\d*))?$")
_METHODS = ("tag", "source", "path", "config.materialized", "resource_type", "fqn")


def _words(selectors: Iterable[str]) -> list[str]:
    return [word for selector in selectors for word in selector.split()]


def _match_criterion(mp: ModelProject, criterion: str) -> set[str]:
    method, _, value = criterion.partition(":") if ":" in criterion else ("fqn", "", criterion)
    if method not in _METHODS:
        close = difflib.get_close_matches(method, _METHODS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(_METHODS)})"
        raise ModelError(f"--select/--exclude: unknown selector method '{method}'{hint}")
    if method == "fqn" and ("/" in value or value.endswith((".yml", ".yaml"))):
        method = "path"
    matched: set[str] = set()
    if method == "fqn":
        matched |= {uid for uid, m in mp.models.items() if fnmatch.fnmatchcase(m.name, value)}
        matched |= {uid for uid, t in mp.tests.items() if fnmatch.fnmatchcase(t.name, value)}
    elif method == "tag":
        matched |= {
            uid for uid, m in mp.models.items() if any(fnmatch.fnmatchcase(t, value) for t in m.spec.tags)
        }
    elif method == "source":
        matched |= {uid for uid, s in mp.sources.items()
                    if fnmatch.fnmatchcase(s.source_name, value) or fnmatch.fnmatchcase(f"{s.source_name}.{s.name}", value)}  # fmt: skip
    elif method == "path":
        prefix = value.rstrip("/")
        nodes = [*mp.models.values(), *mp.sources.values()]
        matched |= {n.unique_id for n in nodes if n.path == prefix or n.path.startswith(prefix + "/")
                    or fnmatch.fnmatchcase(n.path, value)}  # fmt: skip
    elif method == "config.materialized":
        matched |= {uid for uid, m in mp.models.items() if m.spec.materialized == value}
    elif method == "resource_type":
        pools = {"model": mp.models, "source": mp.sources, "test": mp.tests}
        matched |= set(pools.get(value, {}))
    return matched


def _resolve_atom(mp: ModelProject, atom: str) -> set[str]:
    parsed = _ATOM.match(atom)
    if not parsed:
        raise ModelError(
            f"--select/--exclude: cannot parse selector '{atom}' (examples: name, +name, name+, tag:x)"
        )
    base = _match_criterion(mp, parsed.group("criterion"))
    if not base:
        names = [m.name for m in mp.models.values()] + [t.name for t in mp.tests.values()]
        close = difflib.get_close_matches(parsed.group("criterion"), names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ModelError(f"--select/--exclude: '{atom}' matches no model, source or test{hint}")
    selected = set(base)
    graph = mp.graph
    up, down = parsed.group("up"), parsed.group("down")
    for node in base:
        if parsed.group("at"):
            family = graph.descendants(node) | {node}
            selected |= family
            for member in family:
                selected |= graph.ancestors(member)
        if up is not None:
            selected |= graph.ancestors(node, int(up) if up else None)
        if down is not None:
            selected |= graph.descendants(node, int(down) if down else None)
    return selected


def _resolve_words(mp: ModelProject, selectors: Sequence[str]) -> set[str]:
    """Union over selectors of the intersection of their comma-joined atoms."""
    selected: set[str] = set()
    for word in _words(selectors):
        atoms = [_resolve_atom(mp, atom) for atom in word.split(",") if atom]
        if atoms:
            selected |= set.intersection(*atoms)
    return selected


def resolve_selection(mp: ModelProject, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> set[str]:
    """Unique ids selected by ``select`` (all nodes when empty) minus those selected by ``exclude``."""
    everything = set(mp.models) | set(mp.sources) | set(mp.tests)
    selected = _resolve_words(mp, select) if _words(select) else everything
    return selected - _resolve_words(mp, exclude)


def selected_models(mp: ModelProject, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """Selected models in run order (parents first)."""
    chosen = resolve_selection(mp, select, exclude)
    return [uid for uid in mp.graph.topological_order() if uid in mp.models and uid in chosen]


def selected_tests(mp: ModelProject, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """Tests selected directly or through any node they depend on, minus tests excluded the same way."""
    everything = set(mp.models) | set(mp.sources) | set(mp.tests)
    chosen = _resolve_words(mp, select) if _words(select) else everything
    excluded = _resolve_words(mp, exclude)

    def touched(uid: str, nodes: set[str]) -> bool:
        return uid in nodes or any(dep in nodes for dep in mp.tests[uid].depends_on)

    tests = [uid for uid in mp.tests if touched(uid, chosen) and not touched(uid, excluded)]
    return sorted(tests, key=lambda uid: mp.tests[uid].name)
