"""Materializations: how a model's pipeline result is stored.

- ``view``: a MongoDB view on the input (dropped and created again when its pipeline changed).
- ``table``: rebuilt in place, crash-safe on any server (``elt.transform.rebuild``: this run's result written on
  ``unique_key``, then earlier runs' documents deleted; no ``renameCollection``); only then is success recorded,
  so a crash leaves the state unrecorded and the next ``elt transform`` (no ``--full-refresh`` needed) rebuilds
  it. Skipped when neither the model nor any parent changed since the last build.
- ``incremental``: the first build, ``--full-refresh``, a changed definition or a fully rebuilt parent build it
  like a table; otherwise only the partitions whose input changed (see ``elt.transform.intervals``) are recomputed
  and written on ``unique_key`` (``elt.transform.rebuild.merge_changed``). Documents whose content did not change
  are left untouched (their ``_updated_at``/``_run_id`` stay), so downstream models see only real changes. The
  interval state is written only after every batch is written (its keys checked as written): a crash mid-write (a
  replace can drop a document on SecantusDB) is repaired by the next run recomputing the same partitions.
  A model with ``retain`` keeps only its recent span (``elt.transform.retention``).

Every document gets ``_updated_at`` (the run's start time) and ``_run_id``; ``_id`` is left to MongoDB.
``elt.failpoint`` names the points between these steps where the crash tests kill the server.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database
from pymongo.errors import OperationFailure

from elt.errors import TransformError
from elt.failpoint import failpoint
from elt.models.changes import range_scope
from elt.models.project import ModelNode, ModelProject
from elt.models.render import FULL_END, FULL_START
from elt.models.safety import write_target_problem
from elt.transform.context import Outcome, RunContext
from elt.transform.input_window import input_window_match, window_text
from elt.transform.intervals import (
    PENDING_FULL_BUILD,
    PENDING_INCREMENTAL,
    Batch,
    changed_groups,
    mark_full_build_pending,
    mark_incremental_pending,
    newest_value,
    partition_batches,
    read_state,
    stored_watermarks,
    time_range_batches,
    write_state,
    written_scope,
)
from elt.transform.reach import reached_spans
from elt.transform.rebuild import ensure_indexes, merge_changed, rebuild
from elt.transform.retention import RETAIN_NEWEST, cut_of, expire, input_newest
from elt.utc import as_utc

log = logging.getLogger(__name__)

#: A rebuild that wrote or deleted fewer than one document in this many records the keys it changed, so that
#: audits and publish read only those (one query per key); more, and it records the relation as changed whole.
KEY_SCOPES_PER_DOCUMENT = 20


def _change_field(mp: ModelProject, unique_id: str) -> str | None:
    if unique_id in mp.sources:
        return mp.sources[unique_id].spec.loaded_at_field
    return "_updated_at" if mp.models[unique_id].spec.materialized != "view" else None


def _current_watermarks(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext,
                        previous: dict[str, datetime | None]) -> dict[str, datetime | None]:  # fmt: skip
    """Newest change value of every trackable parent, scanning only what is newer than ``previous`` or, for a
    parent this invocation wrote to, than its stamp (SecantusDB reads a whole collection to find its newest)."""
    marks: dict[str, datetime | None] = {}
    for parent in model.depends_on:
        change_field, after = _change_field(mp, parent), previous.get(parent)
        if change_field == "_updated_at" and mp.collection_of(parent) in ctx.stamped:
            after = max(after or ctx.started_at, ctx.started_at)
        if change_field:
            marks[parent] = newest_value(db, mp.collection_of(parent), change_field, after)
    return marks


def _meta_stages(ctx: RunContext) -> list[dict[str, Any]]:
    # $set, not $addFields: the same result, and SecantusDB's $addFields deep-copies each document (~50 us)
    return [{"$project": {"_id": 0}}, {"$set": {"_updated_at": ctx.started_at, "_run_id": ctx.run_id}}]


def build_view(db: Database, mp: ModelProject, model: ModelNode) -> Outcome:
    """Create or replace the view; unchanged views are left alone."""
    pipeline = mp.render_pipeline(model)
    source = mp.collection_of(model.from_id)
    info = next(db.list_collections(filter={"name": model.collection}), None)
    if info and info.get("type") == "view":
        options = info.get("options", {})
        if options.get("viewOn") == source and options.get("pipeline") == pipeline:
            return Outcome("view", message="view unchanged")
    if info:
        db.drop_collection(model.collection)
    try:
        db.command("create", model.collection, viewOn=source, pipeline=pipeline)
    except OperationFailure as exc:
        raise TransformError(f"{model.path}: model '{model.name}': cannot create the view: {exc}") from None
    return Outcome("view", message=f"view created on {source}")


def _check_target(model: ModelNode) -> None:
    """Refuse to write a collection airqino-elt owns, whatever the caller validated before."""
    problem = write_target_problem(model.collection)
    if problem:
        raise TransformError(f"{model.path}: model '{model.name}' may not write this collection: {problem}")


def _full_pipeline(mp: ModelProject, model: ModelNode, cut: datetime | None,
                   input_match: dict[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The pipeline of a full build: everything, only the input within ``input_match`` (a table's
    ``input_window``), or (``cut``, from ``retain``) only the kept span, reading its input back to the span's
    start minus ``lookback``."""
    if cut is None:
        leading = [{"$match": input_match}] if input_match else []
        return leading + mp.render_pipeline(model, FULL_START, FULL_END)
    time_field = model.spec.event_time or ""
    return ([{"$match": {time_field: {"$gte": cut - timedelta(seconds=model.lookback_s)}}}]
            + mp.render_pipeline(model, cut, FULL_END) + [{"$match": {time_field: {"$gte": cut}}}])  # fmt: skip


def build_full(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext, cut: datetime | None = None,
               input_match: dict[str, Any] | None = None, interrupted: bool = False) -> Outcome:  # fmt: skip
    """Rebuild the whole model in place (``elt.transform.rebuild``: write this run's result on the key, delete
    earlier runs' documents); with ``cut``, only the outputs from that ``event_time`` on; with ``input_match``,
    from the input documents it matches. ``interrupted``: an earlier build did not complete, so what it wrote
    is in no change record: this one records the whole collection as changed."""
    _check_target(model)
    pipeline = _full_pipeline(mp, model, cut, input_match) + _meta_stages(ctx)
    rebuilt = rebuild(db, mp.collection_of(model.from_id), pipeline, model, ctx.run_id, ctx.started_at)
    ctx.fully_built.add(model.unique_id)
    assert ctx.changes is not None
    changed, rows = rebuilt.changed_keys, rebuilt.rows
    if rebuilt.newest_event_time is not None and model.spec.event_time:  # a child's retain reads it
        ctx.newest_event_times[(model.collection, model.spec.event_time)] = as_utc(rebuilt.newest_event_time)
    if rows and (changed is None or changed):  # it wrote (or, deleting, stamped one of) its documents
        ctx.stamped.add(model.collection)
    if interrupted or changed is None or len(changed) * KEY_SCOPES_PER_DOCUMENT > rows:
        ctx.changes.add_full(model.collection)
    else:  # audits and publish then read only the documents the rebuild wrote or deleted
        ctx.changes.add_scopes(model.collection, changed)
    read = f"from the input's {window_text(input_match)}" if input_match else "full build"
    return Outcome("full", rows_affected=rows, message=f"{rows} documents ({read})")


def _event_time_of(mp: ModelProject, unique_id: str) -> str | None:
    """The time field a parent declares (a source's or a model's ``event_time``)."""
    node = mp.sources.get(unique_id) or mp.models.get(unique_id)
    return getattr(node.spec, "event_time", None) if node is not None else None


def _batches(db: Database, mp: ModelProject, model: ModelNode, after: datetime,
             extra_groups: list[dict[str, Any]] | None = None, by_runs: bool = True) -> tuple[list[Batch], Any]:  # fmt: skip
    """Batches of the main input's changes since ``after``, plus ``extra_groups`` (changes of secondary inputs
    along their own time field, same partition fields); ``by_runs``: narrowed by the model's ``runs:``."""
    spec = model.spec
    source = mp.collection_of(model.from_id)
    change_field = _change_field(mp, model.from_id) or "_updated_at"
    changes = changed_groups(db, source, change_field, after, spec.partition_by or [], spec.event_time)
    if spec.event_time:
        back, ahead = timedelta(seconds=model.lookback_s), timedelta(seconds=model.lookahead_s)
        runs, time_field = model.runs, spec.event_time
        widen = (None if runs is None or not by_runs else lambda partition, spans: reached_spans(
            db, source, partition, time_field, spans, runs, back, ahead))  # fmt: skip
        batches = time_range_batches(changes.groups + (extra_groups or []), spec.partition_by or [], spec.event_time,
                                     back, ahead, widen)  # fmt: skip
    else:
        batches = partition_batches(changes.groups, spec.partition_by or [])
    return batches, changes


def build_incremental(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext) -> Outcome:
    """Recompute only what changed upstream since the last successful run, or build fully when needed."""
    state = read_state(db, model.unique_id)
    previous = stored_watermarks(state)
    reason = _full_build_reason(db, mp, model, ctx, state)
    interrupted = bool(state and (state.get(PENDING_FULL_BUILD) or state.get(PENDING_INCREMENTAL)))
    if reason:
        outcome = _build_in_full(
            db, mp, model, ctx, reason, _current_watermarks(db, mp, model, ctx, {}), interrupted
        )
        outcome.message = f"{outcome.message}; {reason}"
        if model.from_id in mp.sources:
            ctx.changes.add_full(mp.collection_of(model.from_id))  # type: ignore[union-attr]
        return outcome
    secondary = [p for p in model.depends_on if p != model.from_id]
    watermarks = _current_watermarks(db, mp, model, ctx, previous)
    changed_secondary = [p for p in secondary if p in watermarks and watermarks[p] != previous.get(p)]
    # a secondary input with its own time field is tracked like the main one (its changes become batches)
    # (a parent seen for the first time: all its documents are its changes)
    tracked_secondary = [p for p in changed_secondary if _event_time_of(mp, p)
                         and model.spec.event_time and model.spec.partition_by]  # fmt: skip
    changed_secondary = [p for p in changed_secondary if p not in tracked_secondary]
    if changed_secondary:
        outcome = _build_in_full(db, mp, model, ctx, "secondary input changed", watermarks)
        outcome.message += f"; {', '.join(changed_secondary)} changed (not partition-tracked)"
        return outcome
    after = previous.get(model.from_id)
    extra_groups: list[dict[str, Any]] = []
    for parent in tracked_secondary:
        parent_changes = changed_groups(db, mp.collection_of(parent), _change_field(mp, parent) or "_updated_at",
                                        previous.get(parent) or FULL_START, model.spec.partition_by or [],
                                        _event_time_of(mp, parent))  # fmt: skip
        extra_groups.extend(parent_changes.groups)
        watermarks[parent] = parent_changes.watermark
    batches, changes = (_batches(db, mp, model, after, extra_groups, by_runs=not interrupted)  # after a dead run:
                        if after is not None else ([], None))  # its writes may be anywhere in the reach  # fmt: skip
    if changes is not None:
        watermarks[model.from_id] = changes.watermark
    _check_target(model)
    if batches:
        ensure_indexes(db, model)
        mark_incremental_pending(db, model.unique_id, ctx.run_id)
    source = mp.collection_of(model.from_id)
    rows = 0
    recorded: list[dict[str, Any] | None] = []  # the change records of the batches that wrote something
    for batch in batches:
        start, end = _batch_window(model, batch)
        partition = {k: v for k, v in batch.output_filter.items()
                     if k in (model.spec.partition_by or []) and not isinstance(v, dict)}  # fmt: skip
        pipeline = ([{"$match": batch.input_filter}] + mp.render_pipeline(model, start, end, partition)
                    + [{"$match": batch.output_filter}] + _meta_stages(ctx))  # fmt: skip
        written = merge_changed(db, source, pipeline, model, batch.output_scope)
        rows += len(written)
        if written or interrupted:  # after an interrupted run, what it wrote too: the whole recomputed range
            recorded.append(range_scope(batch.output_filter) if interrupted
                            else written_scope(batch, model.spec.event_time, written))  # fmt: skip
    if rows:
        ctx.stamped.add(model.collection)
    failpoint(f"{model.name}:incremental:merged")
    # No read-back of the keys: merge_changed refused a key the result holds twice, and the unique index on
    # unique_key (made above) refuses a second stored document per key.
    failpoint(f"{model.name}:incremental:verified")
    newest = input_newest(db, mp, model, ctx, state, changes) if model.retain_s else None
    expired = expire(db, model, cut_of(model, newest))
    _record_incremental_changes(mp, model, ctx, recorded, changes)
    write_state(db, model.unique_id, model.checksum, watermarks, ctx.run_id, ctx.started_at, False,
                {RETAIN_NEWEST: newest} if newest is not None else None)  # fmt: skip
    partitions = [p for b in batches for p in b.partitions]
    changed_docs = changes.count if changes else 0
    message = (f"{len(partitions)} partitions from {changed_docs} changed input documents, "
               f"{rows} documents written") if batches else "no changes upstream"  # fmt: skip
    if expired:
        message += f"; {expired} documents older than the retained {model.spec.retain} deleted"
    return Outcome("incremental", rows, partitions, len(partitions), len(batches), message)


def _build_in_full(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext, pending_reason: str,
                   watermarks: dict[str, datetime | None], interrupted: bool = False) -> Outcome:  # fmt: skip
    """An incremental model built like a table (first build, ``--full-refresh``, a changed definition...): only
    its retained span with ``retain``; the state recorded once the build is complete."""
    mark_full_build_pending(db, model.unique_id, ctx.run_id, pending_reason)
    newest = input_newest(db, mp, model, ctx) if model.retain_s else None
    outcome = build_full(db, mp, model, ctx, cut_of(model, newest), interrupted=interrupted)
    write_state(db, model.unique_id, model.checksum, watermarks, ctx.run_id, ctx.started_at, True,
                {RETAIN_NEWEST: newest} if newest is not None else None)  # fmt: skip
    return outcome


def _record_incremental_changes(mp: ModelProject, model: ModelNode, ctx: RunContext,
                                recorded: list[dict[str, Any] | None], changes: Any) -> None:  # fmt: skip
    """The run's change records of an incremental build: the scopes of the documents it wrote
    (``written_scope``; None: a selector with no range form, recorded as a full change), and (for a model
    reading a source) the source documents that changed, per partition and time range."""
    assert ctx.changes is not None
    if any(s is None for s in recorded):
        ctx.changes.add_full(model.collection)
    else:
        ctx.changes.add_scopes(model.collection, [s for s in recorded if s])
    if model.from_id not in mp.sources or changes is None or not changes.groups:
        return
    partition_by = model.spec.partition_by or []
    event_time = model.spec.event_time  # the field changed_groups took first/last of
    spans: dict[tuple, list[Any]] = {}
    for group in changes.groups:
        key = tuple(group["_id"].get(name) for name in partition_by)
        first, last = group.get("first"), group.get("last")
        if key not in spans:
            spans[key] = [first, last]
        elif first is not None and last is not None:
            spans[key] = [min(spans[key][0], first), max(spans[key][1], last)]
    source_scopes = []
    for key, (first, last) in spans.items():
        scope: dict[str, Any] = dict(zip(partition_by, key, strict=True))
        if event_time and first is not None and last is not None:
            scope[event_time] = {"$gte": first, "$lte": last}
        source_scopes.append(scope)
    if not partition_by:
        ctx.changes.add_full(mp.collection_of(model.from_id))
    else:
        ctx.changes.add_scopes(mp.collection_of(model.from_id), source_scopes)


def _batch_window(model: ModelNode, batch: Batch) -> tuple[datetime, datetime]:
    """The ``start``/``end`` a template sees: the batch's output range, or the full window."""
    bounds = batch.output_filter.get(model.spec.event_time or "", None)
    if isinstance(bounds, dict) and "$gte" in bounds:
        return bounds["$gte"], bounds["$lte"]
    return FULL_START, FULL_END


def _full_build_reason(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext,
                       state: dict[str, Any] | None) -> str | None:  # fmt: skip
    if ctx.full_refresh:
        return "--full-refresh"
    if model.collection not in db.list_collection_names(filter={"name": model.collection}):
        return "first build"
    if state is None:
        return "no state recorded"
    if state.get("checksum") != model.checksum:
        return "model definition changed"
    if state.get(PENDING_FULL_BUILD):
        pending = state[PENDING_FULL_BUILD]
        return (
            f"completing the full build interrupted in run {pending.get('run_id')} ({pending.get('reason')})"
        )
    rebuilt = [p for p in model.depends_on if p in ctx.fully_built]
    if rebuilt:
        return f"{', '.join(rebuilt)} was fully rebuilt"
    if stored_watermarks(state).get(model.from_id) is None:
        return "input had no tracked changes yet"
    return None


def build_table(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext) -> Outcome:
    """Full rebuild, skipped when neither the definition nor any tracked parent changed since the last one."""
    state = read_state(db, model.unique_id)
    previous = stored_watermarks(state)
    watermarks = _current_watermarks(db, mp, model, ctx, previous)
    untracked = [p for p in model.depends_on if _change_field(mp, p) is None]
    unchanged = (
        not ctx.full_refresh
        and state is not None
        and not state.get(PENDING_FULL_BUILD)
        and state.get("checksum") == model.checksum
        and not untracked
        and not any(p in ctx.fully_built for p in model.depends_on)
        and all(watermarks.get(p) == previous.get(p) for p in model.depends_on)
        and model.collection in db.list_collection_names(filter={"name": model.collection})
    )
    if unchanged:
        return Outcome("skipped_unchanged", message="no parent changed since the last build")
    recorded = not ctx.full_refresh and state is not None and state.get("checksum") == model.checksum
    input_match = input_window_match(db, mp, model, _change_field(mp, model.from_id),
                                     previous.get(model.from_id) if recorded else None)  # fmt: skip
    mark_full_build_pending(db, model.unique_id, ctx.run_id, "table rebuild")
    outcome = build_full(db, mp, model, ctx, input_match=input_match,
                         interrupted=bool(state and state.get(PENDING_FULL_BUILD)))  # fmt: skip
    write_state(db, model.unique_id, model.checksum, watermarks, ctx.run_id, ctx.started_at, True)
    return outcome


def materialize(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext) -> Outcome:
    """Run one model with its materialization."""
    kind = model.spec.materialized
    if kind == "view":
        return build_view(db, mp, model)
    if kind == "table":
        return build_table(db, mp, model, ctx)
    return build_incremental(db, mp, model, ctx)
