"""``retain``: an incremental model that keeps only the recent span of its ``event_time`` (docs/models.md).

The span ends at the newest ``event_time`` of the model's main input (data time, not the clock) and is
``retain`` long. A full build reads only that span (``elt.transform.materialize``); every incremental run
deletes the outputs that fell out of it, after its batches are written and before its state is recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from elt.models.project import ModelNode, ModelProject
from elt.transform.context import RunContext
from elt.transform.intervals import newest_value

#: ``elt_state`` field of a model with ``retain``: the newest ``event_time`` of its main input seen so far.
RETAIN_NEWEST = "retain_newest"


def input_newest(db: Database, mp: ModelProject, model: ModelNode, ctx: RunContext,
                 state: dict[str, Any] | None = None, changes: Any = None) -> datetime | None:  # fmt: skip
    """The newest ``event_time`` of a model's main input: the one its state recorded, moved on by this run's
    changed input documents. Without one (a full build): the newest this invocation wrote when it rebuilt the
    input, else a scan of the input, because SecantusDB sorts without its indexes (a newest-first
    ``find_one`` reads the whole collection)."""
    known = (state or {}).get(RETAIN_NEWEST)
    if known is None:
        collection, field = mp.collection_of(model.from_id), model.spec.event_time or ""
        rebuilt = ctx.newest_event_times.get((collection, field))
        return rebuilt if rebuilt is not None else newest_value(db, collection, field)
    lasts = [g["last"] for g in (changes.groups if changes else []) if g.get("last") is not None]
    return max([known, *lasts])


def cut_of(model: ModelNode, newest: datetime | None) -> datetime | None:
    """The oldest ``event_time`` a model with ``retain`` keeps (None: it keeps everything)."""
    return newest - timedelta(seconds=model.retain_s) if model.retain_s and newest is not None else None


def expire(db: Database, model: ModelNode, cut: datetime | None) -> int:
    """Delete the outputs older than ``cut`` (a model's ``retain``: what a full build would not produce); the
    count. Idempotent: a run killed before its state is written deletes the same ones again."""
    if cut is None:
        return 0
    return db[model.collection].delete_many({model.spec.event_time: {"$lt": cut}}).deleted_count
