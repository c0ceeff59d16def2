"""Turn the ``tests:`` entries of models, columns and sources into validated test nodes (dbt style names)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from elt.models.render import Renderer, RenderScope
from elt.models.schema import TEST_ARGS, TEST_KINDS, ColumnSpec, FreshnessSpec
from elt.yamlfile import describe_validation

_COLUMN_KINDS = ("not_null", "accepted_values", "accepted_range", "relationships")


@dataclass
class TestNode:
    """A data test attached to a model or source (``attached_to``), optionally on one column."""

    unique_id: str
    name: str
    kind: str
    args: Any
    attached_to: str
    column: str | None
    depends_on: list[str]
    path: str

    @property
    def severity(self) -> str:
        """warn or error (freshness decides per threshold)."""
        return str(getattr(self.args, "severity", "error"))


def _parse_entry(entry: Any) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """(kind, args, problem) of one ``tests:`` list entry."""
    if isinstance(entry, str):
        return entry, {}, None
    if isinstance(entry, dict) and len(entry) == 1:
        (kind, args), = entry.items()  # fmt: skip
        if args is None:
            return kind, {}, None
        if isinstance(args, dict):
            return kind, dict(args), None
        return None, None, f"test '{kind}': its options must be a mapping, got {args!r}"
    return None, None, f"a test is a name ('not_null') or one {{name: {{options}}}} mapping, got {entry!r}"


def build_tests(
    renderer: Renderer,
    attached_to: str,
    path: str,
    columns: Sequence[ColumnSpec],
    model_tests: Sequence[Any],
    freshness: FreshnessSpec | None = None,
    variables: Mapping[str, Any] | None = None,
) -> tuple[list[TestNode], list[str]]:
    """Test nodes for one model or source, and the problems found (each naming the file and node)."""
    label = attached_to.split(".", 1)[1]
    kind_word = "model" if attached_to.startswith("model.") else "source"
    prefix = f"{path}: {kind_word} '{label}': "
    base_name = label.replace(".", "_") if kind_word == "model" else "source_" + label.replace(".", "_")
    entries = [(column.name, entry) for column in columns for entry in column.tests]
    entries += [(None, entry) for entry in model_tests]
    nodes: list[TestNode] = []
    problems: list[str] = []
    for column, entry in entries:
        where = f"columns.{column}.tests" if column else "tests"
        kind, args, problem = _parse_entry(entry)
        if problem or kind is None or args is None:
            problems.append(f"{prefix}{where}: {problem}")
            continue
        if kind not in TEST_ARGS:
            close = difflib.get_close_matches(kind, TEST_KINDS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(TEST_KINDS)})"
            problems.append(f"{prefix}{where}: unknown test '{kind}'{hint}")
            continue
        scope = RenderScope()
        args = renderer.render(args, scope, variables or {}, where=f"{where}.{kind}")
        if column is not None:
            if kind == "unique":
                args.setdefault("columns", [column])
            elif kind in _COLUMN_KINDS:
                args.setdefault("column", column)
        try:
            parsed = TEST_ARGS[kind].model_validate(args)
        except ValidationError as exc:
            scope.errors.extend(describe_validation(exc, TEST_ARGS[kind]))
            parsed = None
        if parsed is not None:
            scope.errors.extend(_semantic_problems(kind, parsed, scope))
        if scope.errors:
            problems.extend(f"{prefix}{where}.{kind}: {e}" for e in scope.errors)
            continue
        subject = getattr(parsed, "column", None) or "_".join(getattr(parsed, "columns", None) or [])
        name = parsed.name or "_".join(p for p in (kind, base_name, subject) if p)
        others = [f"model.{r}" for r in scope.refs] + [f"source.{s}.{t}" for s, t in scope.sources]
        nodes.append(TestNode(f"test.{name}", name, kind, parsed, attached_to, column,
                              sorted({attached_to, *others}), path))  # fmt: skip
    if freshness is not None:
        if freshness.warn_after is None and freshness.error_after is None:
            problems.append(f"{prefix}freshness: set warn_after and/or error_after")
        else:
            name = f"source_freshness_{label.replace('.', '_')}"
            nodes.append(
                TestNode(f"test.{name}", name, "freshness", freshness, attached_to, None, [attached_to], path)
            )
    return nodes, problems


def _semantic_problems(kind: str, args: Any, scope: RenderScope) -> list[str]:
    if kind in _COLUMN_KINDS and not args.column:
        return ["needs column: (declare it under a column, or give column: at model level)"]
    if kind == "unique" and not args.columns:
        return ["needs columns: [field, ...] at model level"]
    if kind == "accepted_range" and args.min_value is None and args.max_value is None:
        return ["set min_value and/or max_value"]
    if kind == "relationships" and len(scope.refs) + len(scope.sources) != 1:
        return ["to: must be \"{{ ref('model') }}\" or \"{{ source('source', 'table') }}\""]
    return []
