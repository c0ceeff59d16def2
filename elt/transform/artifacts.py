"""``target/manifest.json`` and ``target/run_results.json``, with dbt's field names.

manifest.json: ``metadata``, ``nodes`` (models and tests by unique id), ``sources``, ``parent_map`` and
``child_map`` (unique id -> unique ids). run_results.json: ``metadata``, ``results`` (one per executed node:
``unique_id``, ``status``, ``timing``, ``thread_id``, ``execution_time``, ``adapter_response``, ``message``,
``failures``, ``relation_name``), ``elapsed_time`` and ``args``. Datetimes are ISO 8601 strings.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from elt import __version__
from elt.models.project import ModelProject

MANIFEST_SCHEMA = "airqino-elt/manifest/v1"
RUN_RESULTS_SCHEMA = "airqino-elt/run-results/v1"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    """Non-finite floats (``.nan`` in a pipeline) as MongoDB extended JSON, which strict JSON allows."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$numberDouble": str(value).replace("nan", "NaN").replace("inf", "Infinity")}
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (temporary file then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(payload), indent=2, default=_json_default, allow_nan=False))
    os.replace(tmp, path)


def metadata(mp: ModelProject, schema: str, invocation_id: str, generated_at: datetime) -> dict[str, Any]:
    """The ``metadata`` block shared by both artifacts."""
    return {
        "schema_version": schema,
        "elt_version": __version__,
        "generated_at": generated_at.isoformat(),
        "invocation_id": invocation_id,
        "project_name": mp.project.config.name,
        "target_name": mp.project.target_name,
        "database": mp.project.database_name,
    }


def _columns(columns: list[Any]) -> dict[str, Any]:
    return {c.name: {"name": c.name, "description": c.description, "data_type": c.type} for c in columns}


def manifest(mp: ModelProject, invocation_id: str, generated_at: datetime) -> dict[str, Any]:
    """The manifest of the whole project (all nodes, whatever was selected)."""
    database = mp.project.database_name
    nodes: dict[str, Any] = {}
    for uid, model in sorted(mp.models.items()):
        spec = model.spec
        nodes[uid] = {
            "unique_id": uid,
            "resource_type": "model",
            "name": model.name,
            "original_file_path": model.path,
            "description": spec.description,
            "tags": spec.tags,
            "config": {
                "materialized": spec.materialized,
                "unique_key": spec.unique_key,
                "partition_by": spec.partition_by,
                "event_time": spec.event_time,
                "lookback_seconds": model.lookback_s,
                "lookahead_seconds": model.lookahead_s,
                "retain_seconds": model.retain_s,
                "input_window": spec.input_window.model_dump() if spec.input_window else None,
                "indexes": spec.indexes,
            },  # fmt: skip
            "depends_on": {"nodes": model.depends_on},
            "columns": _columns(spec.columns),
            "relation_name": f"{database}.{model.collection}",
            "compiled_pipeline": model.compiled_pipeline,
            "checksum": {"name": "sha256", "checksum": model.checksum},
        }
    for uid, test in sorted(mp.tests.items()):
        kwargs = test.args.model_dump(exclude={"severity", "name"}, exclude_none=True)
        nodes[uid] = {
            "unique_id": uid,
            "resource_type": "test",
            "name": test.name,
            "original_file_path": test.path,
            "test_metadata": {"name": test.kind, "kwargs": kwargs},
            "attached_node": test.attached_to,
            "column_name": test.column,
            "config": {"severity": test.severity},
            "depends_on": {"nodes": test.depends_on},
        }
    sources = {
        uid: {
            "unique_id": uid,
            "resource_type": "source",
            "source_name": src.source_name,
            "name": src.name,
            "identifier": src.collection,
            "original_file_path": src.path,
            "description": src.description,
            "loaded_at_field": src.spec.loaded_at_field,
            "freshness": src.spec.freshness.model_dump() if src.spec.freshness else None,
            "columns": _columns(src.spec.columns),
            "relation_name": f"{database}.{src.collection}",
        }
        for uid, src in sorted(mp.sources.items())
    }
    graph = mp.graph
    return {
        "metadata": metadata(mp, MANIFEST_SCHEMA, invocation_id, generated_at),
        "nodes": nodes,
        "sources": sources,
        "parent_map": {uid: graph.parents[uid] for uid in graph.nodes},
        "child_map": {uid: graph.children[uid] for uid in graph.nodes},
    }
