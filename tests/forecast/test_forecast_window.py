"""The forecast's reads are windows: the newest final hour per station is found through indexed ranges near
the run's time, and equals what a scan of the whole staging history says."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.database import Database

from elt.forecast.reads import first_hours
from elt.forecast.run import newest_final_hour
from elt.forecast.series import newest_final_ts, read_staging

T0 = datetime(2024, 3, 1)


def _staging(db: Database) -> None:
    docs = []
    for station, hours in (("a", 24 * 60), ("b", 24 * 3)):
        for h in range(hours):
            docs.append({"station_id": station, "ts": T0 + timedelta(hours=h), "provisional": h == hours - 1,
                         "pm25": 10.0, "pm25_valid": True})  # fmt: skip
    db.stg_airqino_hourly.insert_many(docs)
    db.stg_airqino_hourly.create_index([("station_id", 1), ("ts", 1)], unique=True)


def _scan(db: Database, station: str) -> datetime:
    return max(d["ts"] for d in db.stg_airqino_hourly.find({"station_id": station}) if not d["provisional"])


def test_newest_final_hour_near_now_far_away_or_without_a_hint_equals_a_full_scan(mongo_db: Database) -> None:
    _staging(mongo_db)
    for station in ("a", "b"):
        expected = _scan(mongo_db, station)
        assert newest_final_ts(mongo_db, station, near=expected + timedelta(hours=2)) == expected
        assert newest_final_ts(mongo_db, station, near=expected + timedelta(days=300)) == expected
        assert newest_final_ts(mongo_db, station) == expected  # now: years after the data
    assert newest_final_ts(mongo_db, "unknown") is None
    newest = newest_final_hour(mongo_db, ["a", "b"], near=T0 + timedelta(days=60))
    assert newest.to_pydatetime() == _scan(mongo_db, "a").replace(tzinfo=None)  # utc_hour: naive UTC


def test_read_staging_reads_each_station_by_its_time_range(mongo_db: Database) -> None:
    _staging(mongo_db)
    frame = read_staging(mongo_db, ["a", "b"], start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    assert sorted(frame.groupby("station_id").size().items()) == [("a", 24), ("b", 24)]
    assert len(read_staging(mongo_db, ["b"])) == 72


def test_the_first_staging_hour_is_cached_and_read_again_only_when_it_may_be_wrong(
    mongo_db: Database,
) -> None:
    staging = mongo_db.stg_airqino_hourly
    staging.create_index([("station_id", 1), ("ts", 1)], unique=True)
    late = T0 + timedelta(days=9)
    staging.insert_many([{"station_id": "a", "ts": T0 + timedelta(hours=h)} for h in range(240)]
                        + [{"station_id": "b", "ts": late + timedelta(hours=h)} for h in range(24)])  # fmt: skip
    end = T0 + timedelta(days=10)
    assert first_hours(mongo_db, ["a", "b", "none"], end, 168) == {"a": T0, "b": late, "none": None}
    earlier = timedelta(hours=5)
    staging.insert_many([{"station_id": s, "ts": first - earlier} for s, first in (("a", T0), ("b", late))])
    # "a" had enough history: its cached first hour stands (only how much more than enough it has changes);
    # "b" had 24 hours: a short station is read again and sees the earlier hour
    assert first_hours(mongo_db, ["a", "b"], end, 168) == {"a": T0, "b": late - earlier}
    staging.delete_one({"station_id": "a", "ts": T0})  # the cached hour is gone: read again
    assert first_hours(mongo_db, ["a"], end, 168) == {"a": T0 - earlier}
