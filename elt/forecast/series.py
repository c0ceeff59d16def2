"""Hourly series per station from staging-shaped rows: valid, final values on a full hourly grid.

Staging-shaped rows are what ``stg_airqino_hourly`` holds: ``station_id``, ``ts`` (UTC hour start),
``provisional`` and per measure ``m`` with ``m_valid``. A value enters the series only when it is valid and the
hour is final; everything else (flagged, provisional, absent hour) is NaN on the grid.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

import pandas as pd
from pymongo.database import Database

from elt.forecast.reads import newest_final_hours
from elt.owned import STAGING_MODEL as STAGING_COLLECTION

log = logging.getLogger(__name__)

#: Measures the forecast reads from staging (pollutants plus the covariates).
MEASURES: tuple[str, ...] = ("co", "pm25", "pm10", "no2", "o3", "t", "rh")


def to_utc_naive(ts: pd.Series) -> pd.Series:
    """Timestamps as naive UTC datetimes (what pymongo returns and writes by default); naive input is UTC."""
    return pd.to_datetime(ts, utc=True).dt.tz_localize(None)


def utc_hour(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A time as a naive UTC ``Timestamp`` floored to the hour (aware input is converted, naive is UTC)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.floor("h")


def _bool_column(rows: pd.DataFrame, name: str, default: bool) -> pd.Series:
    """A boolean column with nulls (and a missing column) read as ``default``."""
    if name not in rows:
        return pd.Series(default, index=rows.index)
    return rows[name].astype(object).where(rows[name].notna(), default).astype(bool)


def hourly_grid(frame: pd.DataFrame, end: datetime | None = None) -> dict[str, pd.DataFrame]:
    """One DataFrame per station, indexed by every UTC hour from its first row to its last (or ``end``).

    Columns are the measures in ``MEASURES``; a value is kept only when ``m_valid`` is true and the row is not
    provisional, else NaN. ``end`` (inclusive) extends or cuts the grid, e.g. to a common last hour.
    """
    grids: dict[str, pd.DataFrame] = {}
    if frame.empty:
        return grids
    frame = frame.assign(ts=to_utc_naive(frame["ts"]).dt.floor("h"))
    for station_id, rows in frame.groupby("station_id", sort=True):
        rows = rows.sort_values("ts").drop_duplicates("ts", keep="last")
        final = ~_bool_column(rows, "provisional", default=False)
        values = pd.DataFrame(index=pd.DatetimeIndex(rows["ts"], name="ts"))
        for measure in MEASURES:
            column = pd.to_numeric(rows[measure], errors="coerce") if measure in rows else None
            if column is None:
                values[measure] = float("nan")
                continue
            keep = final & _bool_column(rows, f"{measure}_valid", default=True)
            values[measure] = column.astype(float).where(keep).to_numpy()
        last = pd.Timestamp(end) if end is not None else values.index.max()
        full = pd.date_range(values.index.min(), last, freq="h", name="ts")
        grids[str(station_id)] = values.reindex(full)
    return grids


#: The staging fields the forecast reads (``read_staging``'s columns).
_FIELDS: list[str] = ["station_id", "ts", "provisional"] + [f for m in MEASURES for f in (m, f"{m}_valid")]


def read_staging(
    db: object,
    station_ids: Iterable[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Read staging-shaped rows from ``stg_airqino_hourly`` (``start`` inclusive, ``end`` exclusive, UTC).

    One query per station (equality on ``station_id`` plus the ``ts`` range, the index's order): a leading
    ``$in`` makes SecantusDB scan the whole collection.
    """
    window: dict[str, datetime] = {}
    if start is not None:
        window["$gte"] = start
    if end is not None:
        window["$lt"] = end
    queries: list[dict[str, object]] = []
    for station_id in [None] if station_ids is None else [str(s) for s in station_ids]:
        query: dict[str, object] = {} if station_id is None else {"station_id": station_id}
        if window:
            query["ts"] = dict(window)
        queries.append(query)
    frame = _read(db, queries)
    log.debug("read %d staging rows for %s", len(frame), station_ids or "all stations")
    return frame


def read_staging_ranges(
    db: object, station_id: str, ranges: Iterable[tuple[datetime, datetime]]
) -> pd.DataFrame:
    """``read_staging`` of one station over several ``[start, end)`` ranges (UTC), one indexed query each."""
    return _read(db, [{"station_id": station_id, "ts": {"$gte": a, "$lt": b}} for a, b in ranges])


def _read(db: object, queries: list[dict[str, object]]) -> pd.DataFrame:
    projection = {f: 1 for f in _FIELDS} | {"_id": 0}
    rows: list[dict] = []
    for query in queries:
        rows.extend(db[STAGING_COLLECTION].find(query, projection))  # type: ignore[index]
    return pd.DataFrame(rows, columns=_FIELDS)


def newest_final_ts(db: Database, station_id: str, near: datetime | None = None) -> datetime | None:
    """The newest non-provisional hour of one station in staging, read through index ranges only
    (``elt.forecast.reads.newest_final_hours``: usually a 48-hour read, not the station's history)."""
    newest = newest_final_hours(db, station_id, near)
    return newest[0]["ts"] if newest else None
