"""Hash before validate: the rows of a response whose stored version is identical, found without parsing.

``skip_unchanged`` compares each raw source row, as its compact JSON text (what
``original_json`` stores) with its provisional flag, with the stored version before anything is validated.
Per UTC day it first compares a digest of the response's rows (the day's rows in time order, as decoded, and
their provisional flags) with the stored day digest (``raw_airqino_digests``, one small document per
station, refreshed after landing); only the days that differ are read back (index ranges) and compared row by
row. A row whose text and flag are unchanged is counted ``unchanged`` without being validated or written. Only
new and changed rows (and rows sharing a timestamp with another row of the response) go through
``parse_rows``. So an hourly fetch of a 365-day response reads about one stored day and validates the few rows
that changed, not 8,760. (A parser change does not re-parse stored rows: clear the station's rows, or its
digest document and rows, and reload to apply it to history.)
"""

from __future__ import annotations

import hashlib
import json
import marshal
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

from pymongo.database import Database

from elt.owned import RAW_DIGESTS_COLLECTION as DIGESTS_COLLECTION
from elt.sources.airqino import AirqinoSource
from elt.sources.rows import HOUR, compact_json, parse_timestamp
from elt.utc import as_utc


def raw_id(station_id: str, ts: datetime) -> str:
    """Deterministic ``_id`` of a station-hour: ``"<station_id>|<YYYY-MM-DDTHH:00Z>"``."""
    ts = as_utc(ts)  # isoformat and hour: a third of a strftime format's cost (8,760 rows per response)
    return f"{station_id}|{ts.date().isoformat()}T{ts.hour:02d}:00Z"


@dataclass
class Prefiltered:
    """A response split by ``skip_unchanged``: rows still to validate, and rows identical to what is stored."""

    rows: list[Any]
    #: Hours (UTC) of the rows whose stored version is identical (text and provisional flag).
    unchanged: list[datetime] = field(default_factory=list)
    #: The stored rows read for the row-by-row comparison (days whose digest differed): ``_id`` -> {ts, provisional}.
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: UTC days whose stored digest did not match the response (refreshed after landing).
    dirty_days: list[str] = field(default_factory=list)


#: Tag of the day digest's format: a stored digest of an older format never matches, so that day is compared
#: row by row once and its digest rewritten.
_DIGEST_FORMAT = "v3:"
#: The API's own timestamp form, ``YYYY-MM-DD HH:00:00`` (UTC), read without ``parse_timestamp``'s general path.
_PLAIN_HOUR = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:00:00")


def _flags(provisional: Iterable[bool]) -> str:
    """Provisional flags as text, ``"1"`` for a provisional row and ``"0"`` for a final one."""
    return "".join("1" if p else "0" for p in provisional)


def _day_digest(rows: list[Any], flags: str) -> str:
    """Digest of one station-day: its rows in time order, as decoded from JSON, and their provisional ``flags``.

    The rows are serialized with ``marshal`` version 2, about a tenth of the cost of encoding them as JSON
    (8,760 rows per response). Version 2 writes no back-references, so equal values give equal bytes whatever
    objects they share: a response's rows and the same rows decoded again from ``original_json`` digest alike.
    """
    serialized = marshal.dumps(rows, 2) + b"\t" + flags.encode()
    return _DIGEST_FORMAT + hashlib.sha1(serialized, usedforsecurity=False).hexdigest()


def _hour_and_day(stamp: str) -> tuple[datetime, str]:
    """``parse_timestamp`` of a row's stamp (same result, same errors) and its UTC day, with a fast path for the
    API's plain UTC form (8,760 stamps per response)."""
    if _PLAIN_HOUR.fullmatch(stamp):
        return datetime.fromisoformat(stamp + "+00:00"), stamp[:10]
    ts = parse_timestamp(stamp)
    return ts, ts.date().isoformat()


def _day_key(ts: datetime) -> str:
    return as_utc(ts).date().isoformat()


def skip_unchanged(db: Database, station_id: str, data: list[Any], fetched_at: datetime) -> Prefiltered:
    """Split ``data`` into rows to validate and rows whose stored version is identical (see module docstring).

    A row counts as identical when its JSON text equals the stored ``original_json`` of the same station and
    the provisional flag it would get now equals the stored one; everything else (new, changed, finalized,
    malformed, or sharing its timestamp with another row of the response) is left for ``parse_rows``.

    Most days of a 365-day response are identical to what is stored: per UTC day, the digest of the response's
    rows is compared with the stored day digest (one small document per station), and only the stored rows of
    the days that differ are read (index ranges) and compared row by row. ``Prefiltered.dirty_days`` are the
    days whose digest ``refresh_day_digests`` must recompute after landing.
    """
    fetched_at = as_utc(fetched_at)
    result = Prefiltered(rows=[])
    stamps = [raw.get("timestamp") if isinstance(raw, dict) else None for raw in data]
    stamps = [stamp if isinstance(stamp, str) else None for stamp in stamps]  # (a list is not even hashable)
    once = {stamp for stamp, count in Counter(stamps).items() if count == 1 and stamp is not None}
    days: dict[str, tuple[list[datetime], list[Any]]] = {}  # UTC day -> its rows' hours and the rows
    for raw, stamp in zip(data, stamps, strict=True):
        if stamp not in once:  # malformed, or sharing its timestamp: parse_rows decides
            result.rows.append(raw)
            continue
        try:
            hour, day = _hour_and_day(stamp)
        except ValueError:
            result.rows.append(raw)
            continue
        entries = days.get(day)
        if entries is None:
            entries = days[day] = ([], [])
        entries[0].append(hour)
        entries[1].append(raw)
    if not days:
        return result
    digests = (db[DIGESTS_COLLECTION].find_one({"_id": station_id}) or {}).get("days", {})
    provisional_after = fetched_at - HOUR  # a row whose hour had not ended when fetched
    dirty = []
    for day, (hours, rows) in days.items():
        if hours != sorted(hours):  # the API sends its rows in time order; in case it did not
            order = sorted(range(len(hours)), key=hours.__getitem__)
            hours, rows = days[day] = [hours[i] for i in order], [rows[i] for i in order]
        flags = (
            _flags(ts > provisional_after for ts in hours)
            if hours[-1] > provisional_after
            else "0" * len(hours)
        )
        if digests.get(day) == _day_digest(rows, flags):
            result.unchanged.extend(hours)
        else:
            dirty.append(day)
    result.dirty_days = sorted(dirty)
    for first, last in _day_ranges(result.dirty_days):
        by_text: dict[str, dict[str, Any]] = {}
        for doc in db[AirqinoSource.raw_collection].find(
            {"station_id": station_id, "ts": {"$gte": first, "$lt": last}},
            {"original_json": 1, "provisional": 1, "ts": 1},
        ):
            result.stored[doc["_id"]] = {"ts": doc["ts"], "provisional": bool(doc.get("provisional"))}
            if isinstance(doc.get("original_json"), str):
                by_text[doc["original_json"]] = doc
        for day in _days_between(first, last):
            hours, rows = days.get(day, ([], []))
            for ts, raw in zip(hours, rows, strict=True):
                doc = by_text.get(compact_json(raw))
                if doc is not None and (ts > provisional_after) == bool(doc.get("provisional")):
                    result.unchanged.append(ts)
                else:
                    result.rows.append(raw)
    return result


def _day_ranges(days: list[str]) -> list[tuple[datetime, datetime]]:
    """Consecutive UTC days merged into ``[start, end)`` datetime ranges."""
    ranges: list[list[datetime]] = []
    for day in days:
        start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + timedelta(days=1)
        else:
            ranges.append([start, start + timedelta(days=1)])
    return [(a, b) for a, b in ranges]


def _days_between(first: datetime, last: datetime) -> list[str]:
    return [_day_key(first + timedelta(days=i)) for i in range((last - first).days)]


def has_landed(db: Database, station_id: str) -> bool:
    """Whether rows of the station were landed: its digests document exists (one ``_id`` read; asking the raw
    collection for "any row of this station" reads every row of it on SecantusDB)."""
    return db[DIGESTS_COLLECTION].find_one({"_id": station_id}, {"_id": 1}) is not None


def refresh_day_digests(db: Database, station_id: str, days: list[str]) -> None:
    """Recompute the stored digests of ``days`` from the stored rows (after landing; a crash before this
    leaves an old digest, which only means those days are compared row by row next time)."""
    if not days:
        return
    update: dict[str, Any] = {}
    for first, last in _day_ranges(days):
        rows: dict[str, list[tuple[datetime, str, bool]]] = {day: [] for day in _days_between(first, last)}
        for doc in db[AirqinoSource.raw_collection].find(
            {"station_id": station_id, "ts": {"$gte": first, "$lt": last}},
            {"original_json": 1, "provisional": 1, "ts": 1},
        ):
            rows[_day_key(doc["ts"])].append(
                (doc["ts"], str(doc.get("original_json")), bool(doc.get("provisional")))
            )
        for day, entries in rows.items():
            entries.sort(key=itemgetter(0))
            try:
                decoded = [json.loads(text) for _, text, _ in entries]
            except ValueError:  # a row stored as repr (not JSON): the day stays compared row by row
                update[f"days.{day}"] = _DIGEST_FORMAT + "unreadable"
                continue
            update[f"days.{day}"] = _day_digest(decoded, _flags(provisional for _, _, provisional in entries))
    db[DIGESTS_COLLECTION].update_one({"_id": station_id}, {"$set": update}, upsert=True)
