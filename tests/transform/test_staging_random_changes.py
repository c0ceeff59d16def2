"""Incremental staging after random revisions, filled gaps and new hours around runs of equal values (the QC
rule that reaches furthest): every incremental build equals a ``--full-refresh`` build."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.transform.task import run_transform
from tests.reference_daily import collection_rows, raw_document, set_stations, utc

STAGING = "stg_airqino_hourly"
START = utc(2024, 5, 1)
#: Values that form runs: zeros (dead after 24 hours), a repeated non-zero value (stuck after 6).
RUN_VALUES = (0.0, 0.0, 0.3)


def _measures(rng: random.Random, hour: int) -> dict[str, Any]:
    """CO and PM2.5 of one hour: mostly runs of equal values, sometimes absent, null or a one-off value. In every
    other block of 170 hours CO is 0.0 one hour in six only: one run of ~28 zeros over the whole block, as long
    in time as the QC rule reaches, so a revision at one end flips flags at the other. In the blocks between,
    PM2.5 is 0.0 one hour in seven only (the widest step a run bridges): a run of ~24 zeros, the dead length."""
    measures: dict[str, Any] = {}
    sparse = "co" if (hour // 170) % 2 == 0 else "pm25"
    if hour % (6 if sparse == "co" else 7) == 0:
        measures[sparse] = 0.0
    for name in ("co", "pm25"):
        if name == sparse:
            continue
        pick = rng.random()
        if pick < 0.05:
            continue  # the key absent
        if pick < 0.08:
            measures[name] = None
        elif pick < 0.11:
            measures[name] = round(1 + rng.random() * 20, 2)
        else:
            measures[name] = RUN_VALUES[(hour // 30) % len(RUN_VALUES)]
    return measures


def _doc(
    hour: int, measures: dict[str, Any], loaded_at: datetime, provisional: bool = False
) -> dict[str, Any]:
    return raw_document(
        "Z", START + timedelta(hours=hour), measures, provisional=provisional, loaded_at=loaded_at
    )


def _id(hour: int) -> str:
    return f"Z|{START + timedelta(hours=hour):%Y-%m-%dT%H:00Z}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_staging_equals_full_refresh_after_random_changes(
    seed: int, project_dir: Path, mongo_db: Database
) -> None:
    rng = random.Random(seed)
    set_stations(project_dir, [{"id": "Z", "name": "ZERO", "timezone": "Africa/Abidjan"}])
    project = load_project(project_dir)
    loaded_at = utc(2024, 7, 1)
    missing = set(
        rng.sample([h for h in range(400) if h % 6 and h % 7], 40)
    )  # gaps of every length, sparse runs kept whole
    present = [h for h in range(400) if h not in missing]
    newest = present[-1]
    raw = mongo_db.raw_airqino_hourly
    raw.insert_many([_doc(h, _measures(rng, h), loaded_at, provisional=h == newest) for h in present])
    assert run_transform(project, mongo_db, select=[STAGING]).exit_code == 0
    flags = {d.get("co_flag") for d in mongo_db[STAGING].find({}, {"co_flag": 1})}
    assert {"dead", "stuck", None} <= flags, flags  # the data has runs of both kinds to revise
    assert (
        mongo_db[STAGING].count_documents(
            {"co": 0.0, "co_flag": "dead", "ts": {"$lt": START + timedelta(hours=170)}}
        )
        >= 24
    )
    second_block = {"$gte": START + timedelta(hours=170), "$lt": START + timedelta(hours=340)}
    assert mongo_db[STAGING].count_documents({"pm25": 0.0, "pm25_flag": "dead", "ts": second_block}) >= 20

    for round_ in range(1, 9):
        loaded_at += timedelta(hours=1)
        for _ in range(rng.randint(1, 4)):  # revisions anywhere, and rows filling a gap
            hour = rng.randrange(newest)
            measures = rng.choice([{"co": 0.0, "pm25": 0.3}, {"co": 0.3}, {"pm25": 0.0}, {},
                                   {"co": round(rng.random() * 5, 2), "pm25": None}])  # fmt: skip
            raw.replace_one({"_id": _id(hour)}, _doc(hour, measures, loaded_at), upsert=True)
        if round_ % 2:  # an hourly fetch: the provisional hour becomes final, a new one arrives
            raw.update_many({"provisional": True}, {"$set": {"provisional": False, "_loaded_at": loaded_at}})
            newest += 1
            raw.insert_one(_doc(newest, {"co": 0.0, "pm25": 0.3}, loaded_at, provisional=True))
        result = run_transform(project, mongo_db, select=[STAGING])
        assert result.exit_code == 0, result.error
        assert result.results[0].adapter_response["mode"] == "incremental"
        incremental = collection_rows(mongo_db, STAGING, ("station_id", "ts"))
        full = run_transform(project, mongo_db, select=[STAGING], full_refresh=True)
        assert full.exit_code == 0, full.error
        rebuilt = collection_rows(mongo_db, STAGING, ("station_id", "ts"))
        assert len(incremental) == len(rebuilt)
        differing = [(a["ts"], a.get("co_flag"), b.get("co_flag"), a.get("pm25_flag"), b.get("pm25_flag"))
                     for a, b in zip(incremental, rebuilt, strict=True) if a != b]  # fmt: skip
        assert not differing, f"round {round_}: incremental differs from a full refresh at {differing[:5]}"
