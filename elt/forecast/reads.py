"""Index-friendly reads of one station's staging hours, for the forecast and its health (no pandas here).

SecantusDB answers a query by reading every document its index range matches, whatever the sort or the limit:
"the newest final hour" or "the first hour" of a station, asked plainly, reads the station's whole history
(about 1 s per station-year). These reads keep to short ``ts`` ranges (equality on ``station_id`` plus a range
on ``ts``: the index's order) and check the provisional flag in the client (a ``$ne`` in the filter makes
SecantusDB scan the whole collection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.database import Database

from elt.owned import STAGING_MODEL as STAGING_COLLECTION
from elt.owned import STATE_COLLECTION
from elt.utc import as_utc

#: Look-back spans tried, in order, to find a station's newest final hours near a time (then: everything).
PROBE_HOURS: tuple[int, ...] = (48, 24 * 14, 24 * 100, 24 * 400)
#: ``elt_state`` document caching each station's first staging hour.
FIRST_HOURS_STATE = "forecast:first_hours"


def _naive_utc(moment: datetime | None) -> datetime:
    """``moment`` (default now) as a naive UTC datetime, the form staging's ``ts`` is compared in."""
    return as_utc(moment or datetime.now(timezone.utc)).replace(tzinfo=None)


def newest_final_hours(
    db: Database, station_id: str, near: datetime | None = None, count: int = 1, fields: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The newest ``count`` non-provisional staging hours of one station, newest first (``ts`` and ``fields``).

    Looks at ``ts >= near - h`` for growing spans ``h`` (``PROBE_HOURS``; ``near`` defaults to now), so the
    usual answer costs a 48-hour read, not the station's history.
    """
    anchor = _naive_utc(near)
    projection = {"ts": 1, "provisional": 1, "_id": 0} | {name: 1 for name in fields}
    final: list[dict[str, Any]] = []
    for hours in (*PROBE_HOURS, None):
        query: dict[str, Any] = {"station_id": station_id}
        if hours is not None:
            query["ts"] = {"$gte": anchor - timedelta(hours=hours)}
        final = [
            d for d in db[STAGING_COLLECTION].find(query, projection) if d.get("provisional") is not True
        ]
        if len(final) >= count:
            break
    return sorted(final, key=lambda d: d["ts"], reverse=True)[:count]


def _has_hour(db: Database, station_id: str, ts: datetime) -> bool:
    window = {"$gte": ts, "$lt": ts + timedelta(hours=1)}
    return db[STAGING_COLLECTION].find_one({"station_id": station_id, "ts": window}, {"_id": 1}) is not None


def _first_hour(db: Database, station_id: str) -> datetime | None:
    rows = list(db[STAGING_COLLECTION].aggregate([
        {"$match": {"station_id": station_id}}, {"$group": {"_id": None, "first": {"$min": "$ts"}}},
    ]))  # fmt: skip
    return rows[0]["first"] if rows else None


def first_hours(
    db: Database, station_ids: Iterable[str], end: datetime, enough_hours: int
) -> dict[str, datetime | None]:
    """Each station's first staging hour (None: no staging row), cached in ``elt_state``.

    The whole history is read only for a station the cache does not know, whose cached hour is gone (a full
    refresh that lost it), or that had less than ``enough_hours`` before ``end`` (a short station reads little);
    otherwise the cached hour is checked with a one-hour read. History loaded later, before the cached hour,
    is not seen by a station that already had enough: it only changes how much more than enough it has.
    """
    state = db[STATE_COLLECTION].find_one({"_id": FIRST_HOURS_STATE}) or {}
    cached = {e["station_id"]: _naive_utc(e["first"]) for e in state.get("stations", []) if e.get("first")}
    end = _naive_utc(end)
    out: dict[str, datetime | None] = {}
    changed = False
    for station_id in station_ids:
        first = cached.get(station_id)
        keep = (first is not None and end - first >= timedelta(hours=enough_hours)
                and _has_hour(db, station_id, first))  # fmt: skip
        if not keep:
            first = _first_hour(db, station_id)
            first = _naive_utc(first) if first is not None else None  # not "now" when absent
            if first != cached.get(station_id):
                cached[station_id] = first  # type: ignore[assignment]
                changed = True
        out[station_id] = first
    if changed:
        db[STATE_COLLECTION].update_one(
            {"_id": FIRST_HOURS_STATE},
            {
                "$set": {
                    "stations": [{"station_id": s, "first": f} for s, f in cached.items() if f is not None]
                }
            },
            upsert=True,
        )
    return out
