"""Interval tracking for incremental models: what changed upstream since the last successful run.

State lives in the ``elt_state`` collection, one document per model: the checksum of its definition and, for
each parent, the watermark (newest ``loaded_at_field`` of a source, or ``_updated_at`` of a model) already
processed. A run reads the parent documents newer than the watermark (an indexed range query), groups them by
partition (and by day along ``event_time``), and turns them into *batches*: one per value of the first
partition field, each with an input filter (what the pipeline reads) and an output filter (what it may
write). Batches use equality + range filters so every server can use the ``(partition, event_time)`` index.

Assumption: loads and transforms do not overlap (``elt run`` serializes them); a document committed during a
transform with a loaded-at time older than the one recorded would otherwise wait for the next full refresh.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from elt.models.changes import range_scope
from elt.owned import STATE_COLLECTION

#: State field of a full build that started and has not completed (a crash or an error interrupted it).
PENDING_FULL_BUILD = "full_build_pending"
#: State field of an incremental build that started writing and has not completed.
PENDING_INCREMENTAL = "incremental_pending"


#: (partition, changed ``[first, last]`` spans in time order) -> the output spans to recompute.
Widen = Callable[[dict[str, Any], list[tuple[datetime, datetime]]], list[tuple[datetime, datetime]]]


@dataclass
class Batch:
    """One incremental aggregation: the input it reads and the outputs it may replace."""

    input_filter: dict[str, Any]
    output_filter: dict[str, Any]
    #: An index-friendly filter (equality, then a range) covering the outputs, to read them back: the stored
    #: documents a batch compares and verifies. ``$in``/``$or`` make SecantusDB scan the whole collection.
    output_scope: dict[str, Any]
    partitions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Changes:
    """Parent documents changed since the watermark."""

    count: int
    watermark: datetime | None
    groups: list[dict[str, Any]]


def read_state(db: Database, unique_id: str) -> dict[str, Any] | None:
    """The state document of a model, or None before its first successful build."""
    return db[STATE_COLLECTION].find_one({"_id": unique_id})


def write_state(db: Database, unique_id: str, checksum: str, watermarks: dict[str, datetime | None],
                run_id: str, at: datetime, full_build: bool, extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Record a successful build of ``unique_id`` and the parent watermarks it processed (and ``extra``
    fields a materialization keeps)."""
    update: dict[str, Any] = {
        "checksum": checksum,
        "watermarks": [{"node": node, "value": value} for node, value in sorted(watermarks.items())],
        "last_run_id": run_id,
        "last_success_at": at,
        **(extra or {}),
    }
    if full_build:
        update["last_full_build_at"] = at
    unset = {PENDING_INCREMENTAL: "", **({PENDING_FULL_BUILD: ""} if full_build else {})}
    db[STATE_COLLECTION].update_one({"_id": unique_id}, {"$set": update, "$unset": unset}, upsert=True)


def mark_full_build_pending(db: Database, unique_id: str, run_id: str, reason: str) -> None:
    """Record that a full build of ``unique_id`` started: until one completes (``write_state`` with
    ``full_build``), every run builds the model fully, even when the reason (a rebuilt parent) is gone."""
    pending = {"run_id": run_id, "reason": reason}
    db[STATE_COLLECTION].update_one({"_id": unique_id}, {"$set": {PENDING_FULL_BUILD: pending}}, upsert=True)


def mark_incremental_pending(db: Database, unique_id: str, run_id: str) -> None:
    """Record that an incremental build of ``unique_id`` started writing (cleared by ``write_state``): the run
    that finds it set knows an earlier one may have written documents its change records never named."""
    db[STATE_COLLECTION].update_one({"_id": unique_id}, {"$set": {PENDING_INCREMENTAL: {"run_id": run_id}}},
                                    upsert=True)  # fmt: skip


def stored_watermarks(state: dict[str, Any] | None) -> dict[str, datetime | None]:
    """Parent -> watermark of a state document."""
    return {w["node"]: w.get("value") for w in (state or {}).get("watermarks", [])}


def newer_than(value: Any) -> dict[str, Any]:
    """The filter "later than ``value``" for an indexed field, as ``$gte`` the next millisecond for a datetime
    (BSON keeps milliseconds, and pymongo drops the rest). The same documents as ``$gt``, but SecantusDB
    answers ``$gt`` by walking every index entry equal to ``value``: a watermark is the stamp of a whole
    run's documents, which after a full build is every document of the collection."""
    if not isinstance(value, datetime):
        return {"$gt": value}
    millisecond = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return {"$gte": millisecond + timedelta(milliseconds=1)}


def newest_value(
    db: Database, collection: str, change_field: str, after: datetime | None = None
) -> datetime | None:
    """The newest ``change_field`` of ``collection`` (only scanning values after ``after`` when given)."""
    if after is not None:
        rows = list(db[collection].aggregate([
            {"$match": {change_field: newer_than(after)}},
            {"$group": {"_id": None, "newest": {"$max": f"${change_field}"}}},
        ]))  # fmt: skip
        return rows[0]["newest"] if rows else after
    doc = db[collection].find_one({change_field: {"$ne": None}}, {change_field: 1}, sort=[(change_field, -1)])
    return doc[change_field] if doc else None


def grouped_changes(db: Database, collection: str, match: dict[str, Any], change_field: str,
                    partition_by: list[str], event_time: str | None) -> list[dict[str, Any]]:  # fmt: skip
    """The documents matching ``match`` grouped by partition (and day of ``event_time``): their count, newest
    ``change_field`` and first/last event time, as ``changed_groups`` and ``time_range_batches`` read them."""
    key: dict[str, Any] = {name: f"${name}" for name in partition_by}
    accumulators: dict[str, Any] = {"count": {"$sum": 1}, "newest": {"$max": f"${change_field}"}}
    if event_time:
        key["_bucket"] = {"$dateTrunc": {"date": f"${event_time}", "unit": "day"}}
        accumulators |= {"first": {"$min": f"${event_time}"}, "last": {"$max": f"${event_time}"}}
    return list(db[collection].aggregate([{"$match": match}, {"$group": {"_id": key, **accumulators}}]))


def changed_groups(db: Database, collection: str, change_field: str, after: datetime, partition_by: list[str],
                   event_time: str | None) -> Changes:  # fmt: skip
    """Partitions (and per-day event_time ranges) of documents with ``after < change_field``."""
    rows = grouped_changes(
        db, collection, {change_field: newer_than(after)}, change_field, partition_by, event_time
    )
    newest = max((r["newest"] for r in rows if r.get("newest") is not None), default=after)
    return Changes(sum(r["count"] for r in rows), newest, rows)


def time_range_batches(groups: list[dict[str, Any]], partition_by: list[str], event_time: str,
                       lookback: timedelta, lookahead: timedelta, widen: Widen | None = None) -> list[Batch]:  # fmt: skip
    """Batches recomputing outputs in ``[changed - lookahead, changed + lookback]`` per partition.

    An output at t reads inputs in ``[t - lookback, t + lookahead]``; so a change at c affects outputs in
    ``[c - lookahead, c + lookback]``, and recomputing outputs ``[a, b]`` reads inputs
    ``[a - lookback, b + lookahead]``. Overlapping output ranges of one partition are merged. ``widen``
    (partition, changed spans) -> output spans replaces the first step when a model knows better
    (``elt.transform.reach``: a model with ``runs:``).
    """
    changed: dict[tuple, list[tuple[datetime, datetime]]] = defaultdict(list)
    for group in groups:
        if group.get("first") is None:
            continue
        changed[tuple(group["_id"].get(name) for name in partition_by)].append(
            (group["first"], group["last"])
        )
    batches = []
    for partition in sorted(changed, key=repr):
        equal = dict(zip(partition_by, partition, strict=True))
        spans = sorted(changed[partition])
        outputs = (widen(equal, spans) if widen is not None
                   else [(first - lookahead, last + lookback) for first, last in spans])  # fmt: skip
        merged: list[list[datetime]] = []
        for lo, hi in sorted(outputs):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            output_filter = {**equal, event_time: {"$gte": lo, "$lte": hi}}
            batches.append(Batch(
                input_filter={**equal, event_time: {"$gte": lo - lookback, "$lte": hi + lookahead}},
                output_filter=output_filter, partitions=[{**equal, "from": lo, "to": hi}], output_scope=output_filter,
            ))  # fmt: skip
    return batches


def written_scope(
    batch: Batch, event_time: str | None, written: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The change record of a batch that wrote ``written`` (their ``unique_key`` values): the batch's selector
    in an index-friendly form, narrowed along ``event_time`` to the span of the written documents when the key
    holds it (a batch recomputes its whole range, and most of it comes out unchanged and is not written, nor
    audited, nor published). None when the selector has no range form."""
    scope = range_scope(batch.output_filter)
    if scope is not None and event_time and written and all(event_time in key for key in written):
        times = [key[event_time] for key in written]
        scope[event_time] = {"$gte": min(times), "$lte": max(times)}
    return scope


def partition_batches(groups: list[dict[str, Any]], partition_by: list[str]) -> list[Batch]:
    """Batches recomputing whole partitions: one per value of the first partition field."""
    by_first: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for group in groups:
        by_first[group["_id"].get(partition_by[0])].append(
            {name: group["_id"].get(name) for name in partition_by}
        )
    batches = []
    for first in sorted(by_first, key=repr):
        partitions = sorted(by_first[first], key=repr)
        selector: dict[str, Any] = {partition_by[0]: first}
        read = scope = selector
        if len(partition_by) == 2:
            values = sorted({p[partition_by[1]] for p in partitions}, key=repr)
            selector = {**selector, partition_by[1]: {"$in": values}}
            read = selector
            # equality + range reads through the (partition, ...) index; a leading $in full-scans on SecantusDB.
            # The pipeline's output is then cut back to exactly the changed partitions. (Values of mixed types
            # have no range: TypeError, keep the $in, and read the outputs back by the first field.)
            with contextlib.suppress(TypeError):
                read = scope = {partition_by[0]: first,
                                partition_by[1]: {"$gte": min(values), "$lte": max(values)}}  # fmt: skip
        elif len(partition_by) > 2:
            selector = read = {"$or": partitions}
        batches.append(
            Batch(input_filter=read, output_filter=selector, partitions=partitions, output_scope=scope)
        )
    return batches
