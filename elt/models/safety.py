"""Safety rules for model pipelines, checked on the rendered pipeline before anything runs.

A model only reads: the runner alone writes its result. So ``$out``/``$merge`` are refused anywhere in a
pipeline (sub-pipelines included), server-side JavaScript (``$where``, ``$function``, ``$accumulator``) is
refused, every stage must be a known aggregation stage, and every collection a stage reads (``$lookup``,
``$unionWith``, ``$graphLookup``) must be a declared relation named with ``ref()``/``source()``.

Collections airqino-elt owns (``elt.owned``) are never a write target: not as a model name, not as a
``$merge``/``$out`` target (``write_target_problem``), and the runner checks again before it writes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from elt.owned import reserved_reason

#: Operators that run JavaScript on the server.
FORBIDDEN_OPERATORS = {
    "$where": "runs JavaScript on the server",
    "$function": "runs JavaScript on the server",
    "$accumulator": "runs JavaScript on the server",
}
#: Stages that write; the runner materializes the model, a pipeline never writes.
WRITE_STAGES = ("$out", "$merge")
#: Aggregation stages a model may use (MongoDB 7).
KNOWN_STAGES = frozenset(
    [
        "$addFields",
        "$bucket",
        "$bucketAuto",
        "$count",
        "$densify",
        "$documents",
        "$facet",
        "$fill",
        "$geoNear",
        "$graphLookup",
        "$group",
        "$limit",
        "$lookup",
        "$match",
        "$project",
        "$redact",
        "$replaceRoot",
        "$replaceWith",
        "$sample",
        "$set",
        "$setWindowFields",
        "$skip",
        "$sort",
        "$sortByCount",
        "$unionWith",
        "$unset",
        "$unwind",
    ]
)


def write_target_problem(name: Any) -> str | None:
    """Why a model may not write collection ``name`` (None when it may): owned, reserved or not a name."""
    if not isinstance(name, str) or not name:
        return f"a collection name must be a non-empty string, got {type(name).__name__} {name!r:.60}"
    if "$" in name or "\x00" in name:
        return f"'{name}' is not a valid collection name"
    return reserved_reason(name)


def _write_target(body: Any) -> Any:
    """The collection a ``$merge``/``$out`` stage body writes (a string, or the ``coll``/``into`` of a mapping)."""
    if isinstance(body, dict):
        target = body.get("into", body.get("coll"))
        return target.get("coll") if isinstance(target, dict) else target
    return body


def _relation_reads(stage: str, body: Any) -> list[tuple[str, Any, list[Any]]]:
    """(key, collection, sub-pipelines) read by one stage."""
    if stage == "$lookup" and isinstance(body, dict):
        return [("$lookup.from", body.get("from"), [body.get("pipeline")])]
    if stage == "$graphLookup" and isinstance(body, dict):
        return [("$graphLookup.from", body.get("from"), [])]
    if stage == "$unionWith":
        if isinstance(body, str):
            return [("$unionWith", body, [])]
        if isinstance(body, dict):
            return [("$unionWith.coll", body.get("coll"), [body.get("pipeline")])]
    if stage == "$facet" and isinstance(body, dict):
        return [("$facet", None, list(body.values()))]
    return []


def check_pipeline(pipeline: Any, relations: Iterable[str], where: str = "pipeline") -> list[str]:
    """Problems of a rendered pipeline; ``relations`` are the collections of declared models and sources."""
    return _check_stages(pipeline, set(relations), where) + _forbidden_anywhere(pipeline, where)


def literal_relations(raw_pipeline: Any, where: str = "pipeline") -> list[str]:
    """Collections a model's *unrendered* pipeline names literally instead of through ref()/source().

    A literal name would hide the dependency from the graph (wrong run order, wrong selection).
    """
    problems: list[str] = []
    if isinstance(raw_pipeline, list):
        for i, stage in enumerate(raw_pipeline):
            problems.extend(literal_relations(stage, f"{where}[{i}]"))
    elif isinstance(raw_pipeline, dict):
        for key, body in raw_pipeline.items():
            for read_key, collection, _ in _relation_reads(str(key), body):
                if isinstance(collection, str) and "{{" not in collection:
                    problems.append(
                        f"{where}.{read_key}: reads '{collection}' by name; write \"{{{{ ref('model') }}}}\" or "
                        "\"{{ source('source', 'table') }}\" so the dependency is known"
                    )
            problems.extend(literal_relations(body, f"{where}.{key}"))
    return problems


def _check_stages(pipeline: Any, known_relations: set[str], where: str) -> list[str]:
    problems: list[str] = []
    if not isinstance(pipeline, list):
        return [f"{where}: must be a list of stages, got {type(pipeline).__name__}"]
    for i, stage in enumerate(pipeline):
        here = f"{where}[{i}]"
        if not isinstance(stage, dict) or len(stage) != 1:
            keys = list(stage) if isinstance(stage, dict) else type(stage).__name__
            problems.append(f"{here}: a stage is a mapping with exactly one $operator key, got {keys}")
            continue
        (name, body), = stage.items()  # fmt: skip
        if name in WRITE_STAGES:
            target = _write_target(body)
            reserved = write_target_problem(target) if isinstance(target, str) else None
            problems.append(
                f"{here}: {name} is not allowed in a model pipeline (the runner writes the result; "
                "choose materialized: table or incremental instead)"
                + (f"; and its target is reserved: {reserved}" if reserved else "")
            )
            continue
        if name not in KNOWN_STAGES:
            close = difflib.get_close_matches(name, sorted(KNOWN_STAGES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"{here}: unknown aggregation stage '{name}'{hint}")
            continue
        for key, collection, sub_pipelines in _relation_reads(name, body):
            if collection is not None and not isinstance(collection, str):
                problems.append(
                    f"{here}.{key}: must be a collection name written \"{{{{ ref('model') }}}}\" or "
                    f"\"{{{{ source('source', 'table') }}}}\", got {type(collection).__name__}"
                )
            elif collection is not None and collection not in known_relations:
                problems.append(
                    f"{here}.{key}: reads '{collection}', which is not a declared relation; "
                    "name it with {{ ref('model') }} or {{ source('source', 'table') }}"
                )
            for j, sub in enumerate(sub_pipelines):
                if sub is not None:
                    problems.extend(_check_stages(sub, known_relations, f"{here}.{name}[{j}]"))
    return problems


def _forbidden_anywhere(value: Any, where: str) -> list[str]:
    problems: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems.extend(_forbidden_anywhere(item, f"{where}[{i}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in FORBIDDEN_OPERATORS:
                problems.append(f"{where}.{key}: {key} is not allowed ({FORBIDDEN_OPERATORS[key]})")
            problems.extend(_forbidden_anywhere(item, f"{where}.{key}"))
    return problems
