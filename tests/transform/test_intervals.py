"""The change scans' "newer than the watermark" filter, on a real wire server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo.database import Database

from elt.transform.intervals import newer_than

MS = timedelta(milliseconds=1)
STAMP = datetime(2026, 12, 5, 1, 2, 3, 456000, tzinfo=timezone.utc)


def test_newer_than_finds_what_gt_finds_from_the_index(mongo_db: Database) -> None:
    """A watermark is the stamp of every document a run wrote: ``newer_than`` selects the same documents as
    ``$gt`` (BSON dates keep milliseconds, pymongo drops the microseconds), as an index-friendly ``$gte``."""
    values = [STAMP - MS, STAMP, STAMP, STAMP + MS, STAMP + timedelta(seconds=1)]
    mongo_db.changes.create_index("at")
    mongo_db.changes.insert_many([{"at": value} for value in values])
    for after in (STAMP - MS, STAMP - timedelta(microseconds=1), STAMP, STAMP + timedelta(microseconds=999)):
        got = sorted(doc["at"] for doc in mongo_db.changes.find({"at": newer_than(after)}))
        assert got == sorted(doc["at"] for doc in mongo_db.changes.find({"at": {"$gt": after}})), after
        assert got == [v for v in values if v > after.replace(microsecond=after.microsecond // 1000 * 1000)]
    assert newer_than(STAMP) == {"$gte": STAMP + MS}
    assert newer_than(7) == {"$gt": 7}  # not a date: as it is
