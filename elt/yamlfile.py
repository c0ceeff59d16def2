"""Strict YAML reading (syntax errors with their line, duplicate keys refused) and readable validation errors
that name the line of the offending key."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class YamlProblem(Exception):
    """A YAML file cannot be read; the message names the line."""


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml's when PyYAML has it: ~10x faster) that refuses duplicate keys (YAML would silently
    keep the last one)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (the first one would be silently ignored)",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


#: 1-based line of every key (and list item) of a YAML document, by its path, e.g. ``("stations", 1, "name")``.
KeyLines = dict[tuple[Any, ...], int]


def read_yaml(path: Path) -> Any:
    """Parsed content of ``path``; ``YamlProblem`` with line and column on a syntax error."""
    return read_yaml_with_lines(path)[0]


def read_yaml_with_lines(path: Path) -> tuple[Any, KeyLines]:
    """Parsed content of ``path`` and the line of each key; ``YamlProblem`` on a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlProblem(f"cannot read the file: {exc}") from None
    try:
        loader = _StrictLoader(text)  # parsed once: the node tree gives the lines and the data
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        lines: KeyLines = {}
        _record_lines(node, (), lines, 0)
        return data, lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context and context not in problem else problem
        raise YamlProblem(f"{where}invalid YAML: {detail}") from None


def _record_lines(node: yaml.Node | None, path: tuple[Any, ...], lines: KeyLines, depth: int) -> None:
    if node is None or depth > 50:  # depth: recursive aliases
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (*path, key_node.value)
                lines.setdefault(key, key_node.start_mark.line + 1)
                _record_lines(value_node, key, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _record_lines(item, (*path, index), lines, depth + 1)


def line_of(lines: KeyLines | None, loc: tuple[Any, ...] | list[Any]) -> int | None:
    """The line of the key at ``loc``, else of its nearest parent that has one (a missing key: its mapping)."""
    if not lines:
        return None
    parts = tuple(p if isinstance(p, int) else str(p) for p in loc)
    while parts:
        if parts in lines:
            return lines[parts]
        parts = parts[:-1]
    return None


#: A validator's message that names a deeper key itself, e.g. "vars.stuck_hours must be ...".
_DEEPER_KEY = re.compile(r"^(?P<key>[A-Za-z_][\w.]*)(?::)? (?P<rest>.*)$", re.DOTALL)


def describe_validation(
    exc: ValidationError, model: type[BaseModel], lines: KeyLines | None = None
) -> list[str]:
    """One line per pydantic error: the line (when ``lines`` is given), key path, problem, and for unknown
    keys the closest allowed key."""
    described = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc) or "(top level)"
        key_loc: list[Any] = list(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1])
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            message = "unknown key" + (f"; did you mean '{close[0]}'?" if close else "")
            if allowed:
                message += f" (allowed: {', '.join(allowed)})"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            got = err.get("input")
            close = difflib.get_close_matches(str(got), re.findall(r"'([^']*)'", expected), n=1)
            message = f"{got!r} is not one of {expected}" + (f"; did you mean '{close[0]}'?" if close else "")
        else:
            message = err["msg"].removeprefix("Value error, ")
            deeper = _DEEPER_KEY.match(message)
            if loc and deeper and deeper.group("key").startswith(f"{path}."):
                path, message = deeper.group("key"), deeper.group("rest")  # not "vars: vars.x must ..."
                key_loc = [int(p) if p.isdigit() else p for p in path.split(".")]
            if "input" in err and not isinstance(err["input"], dict | list):
                message += f" (got {err['input']!r})"
        line = line_of(lines, key_loc)
        described.append(f"{f'line {line}: ' if line else ''}{path}: {message}")
    return described


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        field = fields.get(str(part)) if fields else None
        if field is None:
            return []
        current = _inner_model(field.annotation)
    if not hasattr(current, "model_fields"):
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None
