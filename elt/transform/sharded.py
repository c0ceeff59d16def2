"""The per-station models for one station shard (``elt transform --shard i/N``), safe to run in parallel.

A shard recomputes, for its own stations only, the partitions whose source rows changed since the shard's
last successful build, exactly like an incremental build (``elt.transform.materialize``): same batches
(``time_range_batches`` with the model's lookback/lookahead), same pipeline, same ``$merge`` that leaves
unchanged documents untouched, same key verification. What differs:

- the interval state is kept per station (``elt_state`` id ``<model>@station:<id>``, the newest change of that
  station's rows already processed): shards never move each other's watermark, and a station that moves to
  another shard (stations added, another N) goes on from its own watermark;
- a shard never builds "in full" (no deleting the documents of other runs, which belong to other shards): a
  station's first build, or one after the model's definition changed, recomputes all of that station's rows
  (a station without state of its own starts from the unsharded build's watermark when that one is complete
  and current: switching a running project to shards rebuilds nothing);
- its change records go under ``<run_id>#shard-i-of-N`` (merged by the ``--after-shards`` call).

Only models partitioned by ``station_id`` that read a source with an ``event_time`` can be sharded; anything
else is refused with the model named.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.config import Project
from elt.errors import TransformError
from elt.models import load_models
from elt.models.changes import RunChanges, range_scope, record_changes
from elt.models.project import ModelNode, ModelProject
from elt.models.selection import selected_models
from elt.models.shards import PER_STATION_SELECTOR, Shard, shard_record_id
from elt.transform.context import RunContext
from elt.transform.intervals import (
    PENDING_FULL_BUILD,
    STATE_COLLECTION,
    grouped_changes,
    newer_than,
    read_state,
    stored_watermarks,
    time_range_batches,
    write_state,
)
from elt.transform.materialize import _check_target, _meta_stages
from elt.transform.rebuild import ensure_indexes, merge_changed

#: The partition field a shardable model must have first.
STATION_FIELD = "station_id"


def station_state_id(model: ModelNode, station_id: str) -> str:
    """The ``elt_state`` document id of ``model`` for one station (sharded builds)."""
    return f"{model.unique_id}@station:{station_id}"


def _check_shardable(mp: ModelProject, model: ModelNode) -> None:
    spec = model.spec
    if (spec.materialized != "incremental" or not spec.event_time or model.from_id not in mp.sources
            or (spec.partition_by or [None])[0] != STATION_FIELD):  # fmt: skip
        raise TransformError(
            f"{model.path}: model '{model.name}' cannot be built per station shard: a model selected by "
            f"{PER_STATION_SELECTOR} must be incremental, read a source, declare event_time and be partitioned "
            f"by {STATION_FIELD} first"
        )


def _unsharded_watermark(db: Database, model: ModelNode) -> datetime | None:
    """The watermark of the model's last unsharded build (``elt transform``), when it is complete and of the
    current definition: every station's rows up to it are built, so switching to shards rebuilds nothing."""
    state = read_state(db, model.unique_id)
    if (state is None or state.get("checksum") != model.checksum or state.get(PENDING_FULL_BUILD)
            or not db.list_collection_names(filter={"name": model.collection})):  # fmt: skip
        return None
    return stored_watermarks(state).get(model.from_id)


def _changed_groups(db: Database, source: str, change_field: str, event_time: str,
                    after: dict[str, datetime | None]) -> list[dict[str, Any]]:  # fmt: skip
    """Changed (station, day) groups of ``source``: per station, its rows newer than its own watermark. One
    equality + range query per station: an ``$or`` over stations makes SecantusDB scan the whole collection."""
    groups: list[dict[str, Any]] = []
    for sid, mark in after.items():
        match = (
            {STATION_FIELD: sid, change_field: newer_than(mark)} if mark is not None else {STATION_FIELD: sid}
        )
        groups += grouped_changes(db, source, match, change_field, [STATION_FIELD], event_time)
    return groups


def build_shard(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext,
                station_ids: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """Recompute the changed partitions of ``model`` for ``station_ids`` (a shard's); returns counts."""
    _check_shardable(mp, model)
    _check_target(model)
    event_time = model.spec.event_time or ""
    states = {d["_id"]: d for d in db[STATE_COLLECTION].find(
        {"_id": {"$in": [station_state_id(model, s) for s in station_ids]}})}  # fmt: skip
    seed = _unsharded_watermark(db, model)
    after: dict[str, datetime | None] = {}
    for sid in station_ids:
        state = states.get(station_state_id(model, sid))
        if state is None:  # never built per station: go on from the unsharded build's watermark, if any
            after[sid] = seed
        else:
            after[sid] = (
                stored_watermarks(state).get(model.from_id)
                if state.get("checksum") == model.checksum
                else None
            )
    source = mp.collection_of(model.from_id)
    change_field = mp.sources[model.from_id].spec.loaded_at_field or "_loaded_at"
    groups = _changed_groups(db, source, change_field, event_time, after)
    newest: dict[str, datetime] = {}
    for group in groups:
        sid = group["_id"][STATION_FIELD]
        if group.get("newest") is not None:
            newest[sid] = max(newest.get(sid, group["newest"]), group["newest"])
    batches = time_range_batches(groups, model.spec.partition_by or [], event_time,
                                 timedelta(seconds=model.lookback_s), timedelta(seconds=model.lookahead_s))  # fmt: skip
    if batches:
        ensure_indexes(db, model)
    rows = 0
    for batch in batches:
        bounds = batch.output_filter[event_time]
        partition = {STATION_FIELD: batch.output_filter[STATION_FIELD]}
        pipeline = ([{"$match": batch.input_filter}]
                    + mp.render_pipeline(model, bounds["$gte"], bounds["$lte"], partition)
                    + [{"$match": batch.output_filter}] + _meta_stages(ctx))  # fmt: skip
        rows += len(
            merge_changed(db, source, pipeline, model, batch.output_filter)
        )  # keys checked as written
    assert ctx.changes is not None  # the recomputed ranges: a shard killed mid-write is covered when rerun
    ctx.changes.add_scopes(
        model.collection, [s for s in (range_scope(b.output_filter) for b in batches) if s]
    )
    ctx.changes.add_scopes(source, [{STATION_FIELD: p[STATION_FIELD], event_time: {"$gte": p["from"], "$lte": p["to"]}}
                                    for b in batches for p in b.partitions])  # fmt: skip
    for sid, mark in newest.items():  # only after every batch is merged
        write_state(db, station_state_id(model, sid), model.checksum, {model.from_id: mark}, ctx.run_id,
                    ctx.started_at, False)  # fmt: skip
    fresh_count = sum(1 for mark in after.values() if mark is None)
    return {"model": model.name, "partitions": len(batches), "rows": rows, "first_builds": fresh_count}


def transform_shard(project: Project, db: Database, shard: Shard, run_id: str | None = None,
                    vars: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Build the per-station models (``PER_STATION_SELECTOR``) for the enabled stations of ``shard``.

    Returns ``{"shard", "stations", "models": [...], "seconds"}``; raises TransformError on a failing model.
    The change records go under ``<run_id>#shard-i-of-N``.
    """
    started = time.monotonic()
    mp = load_models(project, vars)
    run_id = run_id or str(uuid.uuid4())
    stations = shard.stations(s.id for s in project.enabled_stations())
    ctx = RunContext(run_id=run_id, started_at=_now(), changes=RunChanges(shard_record_id(run_id, shard)))
    built = []
    for uid in selected_models(mp, [PER_STATION_SELECTOR]):
        try:
            built.append(build_shard(db, mp, mp.models[uid], ctx, stations))
        except PyMongoError as exc:
            raise TransformError(f"model '{mp.models[uid].name}', shard {shard.label}: {exc}") from None
    assert ctx.changes is not None
    record_changes(db, ctx.changes, ctx.started_at)
    return {"shard": shard.label, "stations": stations, "models": built,
            "seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def _now() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
