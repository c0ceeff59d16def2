"""Sandboxed rendering of model files: ``{{ ref() }}``, ``{{ source() }}``, ``{{ var() }}``, the run window.

Every string of a model's YAML that contains ``{{`` or ``{%`` is a Jinja template rendered in jinja2's
``ImmutableSandboxedEnvironment`` (no attribute access to Python internals, no imports, no method that changes
a list or mapping: ``stations``, ``station_ids`` and ``var()`` values are read-only tuples and mappings, so a
template cannot change what the next template sees). Any failure while rendering (``range(10**7)``, a
division by zero, a huge power) is a validation problem of that value, never a crash. A string that is exactly one
``{{ expression }}`` keeps the expression's native type, so ``"{{ var('max_co') }}"`` is the number 50,
``"{{ start }}"`` a datetime and ``"{{ stations }}"`` a list; anything else renders to text. ``partition`` is
the incremental batch's partition (e.g. ``{"station_id": "x"}``; ``{}`` in a full build), so a ``$unionWith``
or ``$lookup`` sub-pipeline can read only that partition: ``"{{ dict(partition, ts={'$gte': start}) }}"``. Each call of
``ref``/``source`` is recorded: that is how dependencies are found, including refs inside ``$lookup``,
``$unionWith`` and ``$graphLookup``. Problems are collected (not raised) so one pass reports them all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

#: The run window used when a model is validated or fully rebuilt (no bounds).
FULL_START = datetime(1970, 1, 1, tzinfo=timezone.utc)
FULL_END = datetime(9999, 12, 31, tzinfo=timezone.utc)

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
#: Date operators whose ``timezone`` argument is expanded when it is a field path (see expand_field_timezones).
_TIMEZONE_OPERATORS = frozenset(
    [
        "$dateToString",
        "$dateToParts",
        "$dateTrunc",
        "$dateFromString",
        "$dateFromParts",
        "$dateAdd",
        "$dateSubtract",
        "$dateDiff",
        "$year",
        "$month",
        "$week",
        "$dayOfMonth",
        "$dayOfWeek",
        "$dayOfYear",
        "$hour",
        "$minute",
        "$second",
        "$millisecond",
        "$isoWeek",
        "$isoWeekYear",
        "$isoDayOfWeek",
    ]
)

_MISSING = object()
#: Largest exponent / repeated length a template may compute (``10**7`` is fine, ``10**100000000`` is refused).
MAX_POWER_EXPONENT = 64
MAX_REPEAT_LENGTH = 1_000_000


def _frozen(value: Any) -> Any:
    """A read-only copy: lists become tuples, mappings read-only mappings (recursively)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_frozen(v) for v in value)
    return value


class _ModelSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with ``**`` and ``*`` bounded so a template cannot exhaust memory or CPU."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_POWER_EXPONENT:
            raise SecurityError(f"exponent {right} is too large (at most {MAX_POWER_EXPONENT} in a template)")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT_LENGTH
                ):
                    raise SecurityError(f"repeating a value {times} times is too large for a template")
        return super().call_binop(context, operator, left, right)


@dataclass
class Relations:
    """Collections a template may name: models by name, source tables by (source, table)."""

    models: dict[str, str]
    sources: dict[tuple[str, str], str]
    invalid_models: frozenset[str] = frozenset()
    """Models whose own file has errors: a ref to one says so, and they still count for "did you mean"."""


@dataclass
class RenderScope:
    """What one rendering recorded: relations used and problems found."""

    refs: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class Renderer:
    """Renders model values against the project's relations, stations and variables."""

    def __init__(
        self, relations: Relations, stations: Sequence[Mapping[str, Any]], project_vars: Mapping[str, Any]
    ):
        self.relations = relations
        self.stations = [dict(s) for s in stations]
        self.project_vars = dict(project_vars)
        self.env = _ModelSandbox(undefined=StrictUndefined, autoescape=False)
        #: Every variable name a template asked for (``--vars`` keys are checked against these).
        self.used_vars: set[str] = set()
        #: Compiled templates by text: a model is rendered once per batch, its templates compiled once.
        self._compiled: dict[str, Any] = {}

    # --- context functions ----------------------------------------------------------------------------------

    def _context(
        self,
        scope: RenderScope,
        model_vars: Mapping[str, Any],
        start: datetime,
        end: datetime,
        partition: Mapping[str, Any] | None = None,
    ) -> dict:
        variables = _frozen({**self.project_vars, **model_vars})

        def ref(name: str) -> str:
            scope.refs.append(name)
            if name in self.relations.invalid_models:
                scope.errors.append(f"ref '{name}': that model is invalid itself (see its errors)")
                return f"__unknown_ref_{name}"
            if name not in self.relations.models:
                known = sorted({*self.relations.models, *self.relations.invalid_models})
                scope.errors.append(f"unknown ref '{name}'{_suggest(name, known)}")
                return f"__unknown_ref_{name}"
            return self.relations.models[name]

        def source(source_name: str, table: str) -> str:
            scope.sources.append((source_name, table))
            key = (source_name, table)
            if key not in self.relations.sources:
                known = [f"{s}.{t}" for s, t in sorted(self.relations.sources)]
                scope.errors.append(
                    f"unknown source '{source_name}.{table}'{_suggest(f'{source_name}.{table}', known)}"
                )
                return f"__unknown_source_{source_name}_{table}"
            return self.relations.sources[key]

        def var(name: str, default: Any = _MISSING) -> Any:
            self.used_vars.add(name)
            if name in variables:
                return variables[name]
            if default is not _MISSING:
                return default
            scope.errors.append(f"unknown var '{name}'{_suggest(name, sorted(variables))} (set it in "
                                "config/elt.yml vars, the model's vars, or --vars)")  # fmt: skip
            return None

        def station_attr(attr: str, default: Any = None, key: str = "$station_id") -> dict[str, Any]:
            """A MongoDB expression giving ``attr`` of the configured station whose id is ``key``."""
            if self.stations and attr not in self.stations[0]:
                scope.errors.append(
                    f"station_attr: stations have no '{attr}'{_suggest(attr, list(self.stations[0]))}"
                )
            ids = [s["id"] for s in self.stations]
            values = [s.get(attr) for s in self.stations]
            index = {"$indexOfArray": [{"$literal": ids}, key]}
            found = {"$arrayElemAt": [{"$literal": values}, "$$elt_station_index"]}
            return {"$let": {"vars": {"elt_station_index": index},
                             "in": {"$cond": [{"$gte": ["$$elt_station_index", 0]}, found, default]}}}  # fmt: skip

        return {
            "ref": ref,
            "source": source,
            "var": var,
            "start": start,
            "end": end,
            "partition": _frozen(dict(partition or {})),
            "stations": _frozen(self.stations),
            "station_ids": tuple(s["id"] for s in self.stations),
            "station_attr": station_attr,
        }

    # --- rendering ------------------------------------------------------------------------------------------

    def render(
        self,
        value: Any,
        scope: RenderScope,
        model_vars: Mapping[str, Any] | None = None,
        start: datetime = FULL_START,
        end: datetime = FULL_END,
        where: str = "",
        partition: Mapping[str, Any] | None = None,
    ) -> Any:
        """``value`` with every templated string rendered; problems go to ``scope.errors`` with their path."""
        context = self._context(scope, model_vars or {}, start, end, partition)
        return self._walk(value, context, scope, where)

    def _walk(self, value: Any, context: dict, scope: RenderScope, where: str) -> Any:
        if isinstance(value, str):
            return self._render_string(value, context, scope, where)
        if isinstance(value, list):
            return [self._walk(item, context, scope, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {key: self._walk(item, context, scope, f"{where}.{key}" if where else str(key))
                    for key, item in value.items()}  # fmt: skip
        return value

    def _render_string(self, text: str, context: dict, scope: RenderScope, where: str) -> Any:
        if "{{" not in text and "{%" not in text:
            return text
        before = len(scope.errors)
        try:
            single = _SINGLE_EXPRESSION.match(text)
            compiled = self._compiled.get(text)
            if compiled is None:
                compiled = (self.env.compile_expression(single.group("expr").strip(), undefined_to_none=False)
                            if single else self.env.from_string(text).render)  # fmt: skip
                self._compiled[text] = compiled
            result = _native(compiled(**context)) if single else compiled(**context)
        except TemplateError as exc:
            scope.errors.append(f"{where or 'value'}: template error in {text!r}: {exc}")
            return None
        except (ArithmeticError, ValueError, TypeError, LookupError, MemoryError, RecursionError) as exc:
            scope.errors.append(f"{where or 'value'}: template {text!r} failed: {type(exc).__name__}: {exc}")
            return None
        for i in range(before, len(scope.errors)):
            scope.errors[i] = f"{where or 'value'}: {scope.errors[i]}"
        return result


def _native(value: Any) -> Any:
    """Jinja values as plain Python: undefined raises, tuples become lists, read-only mappings dicts."""
    if isinstance(value, tuple):
        return [_native(v) for v in value]
    if isinstance(value, list):
        return [_native(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [_native(v) for v in sorted(value, key=repr)]
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the variable
    return value


def expand_field_timezones(value: Any, timezones: Sequence[str]) -> Any:
    """Rewrite date operators whose ``timezone`` is a field path into a ``$switch`` over constant timezones.

    ``{$hour: {date: "$ts", timezone: "$tz"}}`` becomes one branch per configured timezone, each with a constant
    ``timezone``, and UTC as the default. MongoDB >= 7 accepts an expression there, but some servers (the
    embedded SecantusDB) accept only constants; the rewrite gives identical results on both.
    """
    if isinstance(value, list):
        return [expand_field_timezones(v, timezones) for v in value]
    if not isinstance(value, dict):
        return value
    value = {k: expand_field_timezones(v, timezones) for k, v in value.items()}
    if len(value) != 1:
        return value
    (operator, args), = value.items()  # fmt: skip
    tz = args.get("timezone") if isinstance(args, dict) else None
    if operator not in _TIMEZONE_OPERATORS or not (isinstance(tz, str) and tz.startswith("$")):
        return value

    def with_tz(name: str) -> dict[str, Any]:
        return {operator: {**args, "timezone": name}}

    branches = [{"case": {"$eq": [tz, name]}, "then": with_tz(name)} for name in sorted(set(timezones))]
    return {"$switch": {"branches": branches, "default": with_tz("UTC")}} if branches else with_tz("UTC")


def walk_stages(pipeline: Any, visit: Callable[[str, Any, str], None], where: str = "pipeline") -> None:
    """Call ``visit(key, value, path)`` for every mapping key in ``pipeline``, sub-pipelines included."""
    if isinstance(pipeline, list):
        for i, item in enumerate(pipeline):
            walk_stages(item, visit, f"{where}[{i}]")
    elif isinstance(pipeline, dict):
        for key, item in pipeline.items():
            visit(str(key), item, f"{where}.{key}")
            walk_stages(item, visit, f"{where}.{key}")
