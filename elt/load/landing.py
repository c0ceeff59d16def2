"""Landing one parsed response in ``raw_airqino_hourly``: write only new or changed rows, keep what they
replace.

Efficiency: one projected query reads the stored ``_content_hash``, ``provisional``, ``_revision`` and
``_last_seen`` of the response's time range; diffs are computed in Python; writes go out as unordered
``bulk_write`` chunks. An identical reload writes nothing at all (not even ``_last_seen``: a re-delivery of
an unchanged row is recorded once per station in ``load_batches``, not in 8,760 documents).

Crash safety (kill -9 at any point, then a rerun, gives the state of an uninterrupted run):
- history entries have deterministic ids (``<raw_id>|r<revision replaced>``) and are upserted BEFORE the raw
  update they belong to, so an interrupted change is simply recomputed and re-applied;
- a raw update replaces the document by ``_id`` (a filter on anything else makes SecantusDB 2-3x slower);
  concurrent loads of one station are kept apart by ``elt run``'s lease, not here;
- inserts of new station-hours are idempotent through the deterministic ``_id``;
- rejects have content-derived ids and are written with ``$setOnInsert``.

Hash before validate: ``elt.load.prefilter.skip_unchanged`` leaves only new and changed rows to validate.

Version rules: a stored row changes when its content hash or its provisional flag differs from the incoming
row's. A response fetched BEFORE the stored version was seen (``fetched_at < _last_seen``) never overwrites it
(counted as ``stale``): replaying an old archive after a newer fetch cannot roll data back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from elt.errors import LoadError
from elt.load.prefilter import Prefiltered, raw_id
from elt.sources.airqino import AirqinoSource
from elt.sources.rows import (
    HourlyRow,
    ParsedResponse,
    RejectedRow,
    floor_hour,
)
from elt.store import ensure_unique_index
from elt.utc import as_utc

#: Rows per ``bulk_write`` call: big enough to amortize round trips, small enough for steady progress.
CHUNK_SIZE = 2000
ProgressCallback = Callable[[int], None]


@dataclass
class LandingCounts:
    """What landing one response did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Rows not applied because the stored version was seen by a later fetch.
    stale: int = 0
    rejected: int = 0
    #: History entries written (one per updated row).
    history: int = 0
    #: Stored provisional hours inside the response's range that the response no longer contains.
    unconfirmed_provisional: int = 0


def reject_id(reject: RejectedRow) -> str:
    """Content-derived ``_id`` of a quarantined row, so re-delivering it does not add a second copy."""
    return hashlib.sha256(
        f"{reject.station_id}\n{reject.reason}\n{reject.original_json}".encode()
    ).hexdigest()


def ensure_load_indexes(db: Database) -> None:
    """The unique (station_id, ts) index on raw rows plus the lookup indexes of history, rejects and audit."""
    raw = db[AirqinoSource.raw_collection]
    for name, spec in raw.index_information().items():
        # A plain index on the same keys (e.g. ensured by a transform first) would make mongod refuse the
        # unique one (IndexOptionsConflict): the unique index serves the same queries, so it replaces it.
        if spec.get("key") == [("station_id", 1), ("ts", 1)] and not spec.get("unique"):
            raw.drop_index(name)
    ensure_unique_index(raw, ["station_id", "ts"])
    db[AirqinoSource.history_collection].create_index([("station_id", ASCENDING), ("ts", ASCENDING)])
    db[AirqinoSource.rejects_collection].create_index(
        [("station_id", ASCENDING), ("_rejected_at", ASCENDING)]
    )
    db[AirqinoSource.batches_collection].create_index([("station_id", ASCENDING), ("started_at", DESCENDING)])


def raw_document(
    row: HourlyRow,
    digest: str,
    batch_id: str,
    loaded_at: datetime,
    fetched_at: datetime,
    first_seen: datetime,
    revision: int,
) -> dict[str, Any]:
    """The ``raw_airqino_hourly`` document of a row version (measures at top level, absent stays absent)."""
    doc: dict[str, Any] = {"_id": raw_id(row.station_id, row.ts), "station_id": row.station_id, "ts": row.ts}
    doc.update(row.measures)
    if row.extra:
        doc["extra"] = row.extra
    doc.update(
        original_json=row.original_json,
        provisional=row.provisional,
        _content_hash=digest,
        _batch_id=batch_id,
        _first_seen=first_seen,
        _last_seen=fetched_at,
        _loaded_at=loaded_at,
        _revision=revision,
    )
    return doc


def history_document(
    old: dict[str, Any], new_hash: str, new_provisional: bool, fetched_at: datetime, batch_id: str
) -> dict[str, Any]:
    """The ``raw_airqino_history`` entry keeping ``old`` (full raw doc) when a new version replaces it."""
    changes = []
    if old.get("_content_hash") != new_hash:
        changes.append("content")
    if bool(old.get("provisional")) != new_provisional:
        changes.append("finalized" if not new_provisional else "provisional")
    entry = {k: v for k, v in old.items() if k not in ("_id", "_first_seen", "_last_seen")}
    entry.update(
        _id=f"{old['_id']}|r{old.get('_revision', 0)}",
        raw_id=old["_id"],
        change="+".join(changes),
        _valid_from=old.get("_last_seen"),
        _valid_to=fetched_at,
        _replaced_by_batch=batch_id,
    )
    return entry


def quarantine(db: Database, rejects: Iterable[RejectedRow], batch_id: str, rejected_at: datetime) -> int:
    """Upsert rejected rows into ``raw_airqino_rejects`` (first batch and time kept); returns how many."""
    ops = []
    for reject in rejects:
        doc = {
            "station_id": reject.station_id,
            "_batch_id": batch_id,
            "reason": reject.reason,
            "original_json": reject.original_json,
            "_rejected_at": rejected_at,
        }
        ops.append(UpdateOne({"_id": reject_id(reject)}, {"$setOnInsert": doc}, upsert=True))
    for start in range(0, len(ops), CHUNK_SIZE):
        db[AirqinoSource.rejects_collection].bulk_write(ops[start : start + CHUNK_SIZE], ordered=False)
    return len(ops)


def land_response(
    db: Database,
    parsed: ParsedResponse,
    batch_id: str,
    loaded_at: datetime,
    progress: ProgressCallback | None = None,
    chunk_size: int = CHUNK_SIZE,
    known: Prefiltered | None = None,
) -> LandingCounts:
    """Write the new and changed rows of ``parsed`` (and its rejects); unchanged rows are not touched.

    ``known``: what ``skip_unchanged`` already found identical (counted unchanged here, never validated).
    """
    counts = LandingCounts(rejected=quarantine(db, parsed.rejects, batch_id, loaded_at))
    if known is not None:
        counts.unchanged += len(known.unchanged)
        if progress and known.unchanged:
            progress(len(known.unchanged))
        counts.unconfirmed_provisional = _unconfirmed(known, parsed)
    if not parsed.rows:
        return counts
    raw = db[AirqinoSource.raw_collection]
    fetched_at = parsed.fetched_at
    existing = {
        doc["_id"]: doc
        for doc in raw.find(
            {"station_id": parsed.station_id, "ts": {"$gte": parsed.first_ts, "$lte": parsed.last_ts}},
            {"_content_hash": 1, "provisional": 1, "_revision": 1, "_last_seen": 1, "ts": 1},
        )
    }
    for start in range(0, len(parsed.rows), chunk_size):
        chunk = parsed.rows[start : start + chunk_size]
        _land_chunk(db, chunk, existing, batch_id, loaded_at, fetched_at, counts)
        if progress:
            progress(len(chunk))
    if known is not None:
        return counts
    incoming = {raw_id(r.station_id, r.ts) for r in parsed.rows}
    fetch_hour = floor_hour(fetched_at)
    counts.unconfirmed_provisional = sum(
        1
        for doc_id, doc in existing.items()
        if doc.get("provisional") and doc_id not in incoming and as_utc(doc["ts"]) < fetch_hour
    )
    return counts


def _unconfirmed(known: Prefiltered, parsed: ParsedResponse) -> int:
    """Stored provisional hours inside the incoming rows' range that the response no longer contains."""
    incoming = set(known.unchanged)
    incoming.update(as_utc(r.ts) for r in parsed.rows)
    if not incoming:
        return 0
    first, last = min(incoming), max(incoming)
    fetch_hour = floor_hour(parsed.fetched_at)
    stored_hours = (as_utc(doc["ts"]) for doc in known.stored.values() if doc["provisional"])
    return sum(1 for ts in stored_hours if ts not in incoming and first <= ts <= last and ts < fetch_hour)


def _land_chunk(
    db: Database,
    rows: list[HourlyRow],
    existing: dict[str, dict[str, Any]],
    batch_id: str,
    loaded_at: datetime,
    fetched_at: datetime,
    counts: LandingCounts,
) -> None:
    inserts: list[InsertOne] = []
    changed: list[tuple[HourlyRow, str, dict[str, Any]]] = []
    for row in rows:
        digest = row.content_hash
        doc_id = raw_id(row.station_id, row.ts)
        old = existing.get(doc_id)
        if old is None:
            inserts.append(
                InsertOne(raw_document(row, digest, batch_id, loaded_at, fetched_at, fetched_at, 0))
            )
        elif old.get("_content_hash") == digest and bool(old.get("provisional")) == row.provisional:
            counts.unchanged += 1
        elif old.get("_last_seen") is not None and as_utc(old["_last_seen"]) > fetched_at:
            counts.stale += 1
        else:
            changed.append((row, digest, old))

    updates: list[ReplaceOne] = []
    if changed:
        full = _full_documents(db, rows[0].station_id, [row.ts for row, _, _ in changed])
        history = []
        for row, digest, old in changed:
            previous = full.get(old["_id"], old)
            history.append(history_document(previous, digest, row.provisional, fetched_at, batch_id))
            revision = int(previous.get("_revision", 0))
            first_seen = previous.get("_first_seen") or fetched_at
            new_doc = raw_document(row, digest, batch_id, loaded_at, fetched_at, first_seen, revision + 1)
            updates.append(ReplaceOne({"_id": old["_id"]}, new_doc))
        # History first: a crash after this line leaves the raw row untouched and the change re-applicable.
        db[AirqinoSource.history_collection].bulk_write(
            [ReplaceOne({"_id": h["_id"]}, h, upsert=True) for h in history], ordered=False
        )
        counts.history += len(history)

    if not (inserts or updates):
        return
    try:
        result = db[AirqinoSource.raw_collection].bulk_write([*inserts, *updates], ordered=False)
    except BulkWriteError as exc:
        duplicates = sum(1 for err in exc.details.get("writeErrors", []) if err.get("code") == 11000)
        raise LoadError(
            f"{duplicates or 'some'} rows were written by another load while this one ran "
            f"({exc.details.get('writeErrors', [{}])[0].get('errmsg', exc)}); rerun `elt load`"
        ) from None
    if result.matched_count != len(updates):
        raise LoadError(
            f"{len(updates) - result.matched_count} rows vanished under this load "
            "(deleted by another process?); "
            "rerun `elt load`"
        )
    counts.inserted += result.inserted_count
    counts.updated += len(updates)


def _full_documents(db: Database, station_id: str, stamps: list[datetime]) -> dict[str, dict[str, Any]]:
    """Full raw documents of a station between the oldest and newest of ``stamps`` (one range scan: on
    SecantusDB an ``_id: {$in: [...]}`` lookup of 2,000 ids is ~25x slower than scanning the range)."""
    query = {"station_id": station_id, "ts": {"$gte": min(stamps), "$lte": max(stamps)}}
    wanted = {raw_id(station_id, ts) for ts in stamps}
    return {doc["_id"]: doc for doc in db[AirqinoSource.raw_collection].find(query) if doc["_id"] in wanted}
