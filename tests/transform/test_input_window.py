"""A table's ``input_window`` (station_headline): a rebuild reads only its input's last days, and gives what a
build from the whole input gives, on a real wire server.

Two stations, 39 local days 2024-08-01..09-08 (Africa/Abidjan = UTC), PM2.5 over the WHO guideline on two
days of three. Then one new day for one station and revisions of older days, as an hourly load lands them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.transform.input_window import days_before
from elt.transform.task import run_transform
from tests.reference_daily import hours, raw_document, utc

pytestmark = pytest.mark.timeout(600)

SMART188, SMART189 = "283164601", "283181971"
FIRST_DAY = utc(2024, 8, 1)
SELECT = ["+station_headline"]


def _day(station_id: str, index: int, extra: float = 0.0, loaded_at: datetime | None = None) -> list[dict]:
    base = 12 + (index % 3) * 5 + extra  # 12, 17, 22: over 15 ug/m3 on two days of three
    return [
        raw_document(station_id, ts, {"pm25": base + (h % 3) - 1, "co": 0.5}, loaded_at=loaded_at)
        for h, ts in enumerate(hours(FIRST_DAY + timedelta(days=index), 24))
    ]


def _land(db: Database, docs: list[dict]) -> None:
    for doc in docs:
        db.raw_airqino_hourly.replace_one({"_id": doc["_id"]}, doc, upsert=True)


def _headline(db: Database) -> list[dict]:
    return list(
        db.station_headline.find({}, {"_id": 0, "_updated_at": 0, "_run_id": 0}).sort("station_id", 1)
    )


def _transform(project_dir: Path, db: Database, full_refresh: bool = False) -> str:
    result = run_transform(load_project(project_dir), db, select=SELECT, full_refresh=full_refresh,
                           write_artifacts=False)  # fmt: skip
    assert result.ok
    return next(r.message for r in result.results if r.unique_id == "model.station_headline")


def _equals_a_build_from_everything(project_dir: Path, db: Database) -> None:
    rebuilt = _headline(db)
    assert "full build" in _transform(project_dir, db, full_refresh=True)
    assert rebuilt == _headline(db)


def test_headline_rebuilds_from_the_last_days_and_equals_a_build_from_everything(
    project_dir: Path, mongo_db: Database
) -> None:
    _land(mongo_db, [doc for s in (SMART188, SMART189) for i in range(39) for doc in _day(s, i)])
    assert "full build" in _transform(project_dir, mongo_db)  # the first build reads everything
    first = {d["station_id"]: d for d in _headline(mongo_db)}
    assert first[SMART188]["yesterday"] == "2024-09-07"
    assert first[SMART188]["pm25_complete_days_30d"] == 30

    # the next hour: a new day for SMART188, and a revision 36 days back (outside the 30 days)
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    _land(mongo_db, _day(SMART188, 39, loaded_at=later) + _day(SMART189, 2, extra=30, loaded_at=later))
    assert "from the input's day >= 2024-08-10" in _transform(project_dir, mongo_db)
    headline = {d["station_id"]: d for d in _headline(mongo_db)}
    assert headline[SMART188]["yesterday"] == "2024-09-08"
    assert headline[SMART188]["pm25_days_over_who_30d"] == 20  # days 08-09..09-07: 20 of the 30 at 17 or 22
    _equals_a_build_from_everything(project_dir, mongo_db)

    # only an older day changes: the window starts 30 days before it, so it still holds every day needed
    _land(mongo_db, _day(SMART189, 25, extra=-10, loaded_at=later + timedelta(seconds=1)))
    assert "from the input's day >= 2024-07-27" in _transform(project_dir, mongo_db)
    _equals_a_build_from_everything(project_dir, mongo_db)


def test_days_before_keeps_the_kind_of_value() -> None:
    assert days_before("2024-09-09", 30) == "2024-08-10"
    assert days_before(utc(2024, 9, 9, 5), 1) == utc(2024, 9, 8, 5)
    assert days_before("2024-02-30", 1) is None  # not a day: the whole input is read
    assert days_before(20240909, 1) is None
