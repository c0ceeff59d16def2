"""``elt.transform.reach``: a changed span widens only by the short runs of equal values next to it (staging's
``runs:`` with its defaults: 24 documents, 7 hours apart at most)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from pymongo.database import Database

from elt.models.runs import Runs
from elt.transform.reach import reached_spans
from tests.reference_daily import utc

T0 = utc(2024, 5, 1)
HOUR = timedelta(hours=1)
REACH = 161 * HOUR
RUNS = Runs(fields=("co", "pm25"), min_run=24, max_step_s=7 * 3600, skip_if=(("provisional", True),))


def at(hour: int) -> datetime:
    return T0 + hour * HOUR


def load(db: Database, values: dict[int, Any], provisional: tuple[int, ...] = ()) -> None:
    """Hours 0..599 of station S: CO a different number each hour, except ``values`` (None: CO absent); no PM2.5."""
    docs = []
    for hour in range(600):
        doc: dict[str, Any] = {"station_id": "S", "ts": at(hour)}
        value = values.get(hour, float(hour))
        if value is not None:
            doc["co"] = value
        if hour in provisional:
            doc["provisional"] = True
        docs.append(doc)
    db.reach_input.insert_many(docs)


def spans(db: Database, *changed: tuple[int, int]) -> list[tuple[int, int]]:
    reached = reached_spans(db, "reach_input", {"station_id": "S"}, "ts",
                            [(at(a), at(b)) for a, b in changed], RUNS, REACH, REACH)  # fmt: skip
    return [(int((lo - T0) / HOUR), int((hi - T0) / HOUR)) for lo, hi in reached]


def test_values_that_all_differ_reach_only_the_next_hour_on_each_side(mongo_db: Database) -> None:
    load(mongo_db, {})
    assert spans(mongo_db, (300, 301)) == [(299, 302)]  # a run of one, which the change may join


def test_a_short_run_next_to_the_change_is_recomputed_on_each_side(mongo_db: Database) -> None:
    load(mongo_db, {h: 0.0 for h in range(290, 300)} | {h: 5.0 for h in range(302, 305)})
    assert spans(mongo_db, (300, 301)) == [(290, 304)]


def test_a_run_of_min_run_documents_is_flagged_whatever_the_change_does(mongo_db: Database) -> None:
    load(mongo_db, {h: 0.0 for h in range(276, 300)})  # 24 zeros
    assert spans(mongo_db, (300, 301)) == [(300, 302)]
    mongo_db.reach_input.delete_many({})
    load(mongo_db, {h: 0.0 for h in range(277, 300)})  # 23: the change may make it 24
    assert spans(mongo_db, (300, 301)) == [(277, 302)]


def test_a_run_joins_across_gaps_of_up_to_max_step_and_no_further(mongo_db: Database) -> None:
    sparse = {h: None for h in range(150, 300)} | {h: 0.0 for h in range(153, 300, 7)}  # 0.0 every 7 hours
    load(mongo_db, sparse)
    assert spans(mongo_db, (300, 300)) == [
        (153, 301)
    ]  # 21 members over 140 hours: read past the first quarter
    mongo_db.reach_input.delete_many({})
    load(mongo_db, sparse | {293: None})  # CO last 14 hours before the change: no run can reach it
    assert spans(mongo_db, (300, 300)) == [(300, 301)]


def test_provisional_documents_belong_to_no_run(mongo_db: Database) -> None:
    load(mongo_db, {h: 0.0 for h in range(276, 300)}, provisional=(298,))
    assert spans(mongo_db, (300, 301)) == [(276, 302)]  # 23 members: the run bridges the provisional hour


def test_a_walk_stops_at_the_neighbouring_change(mongo_db: Database) -> None:
    load(mongo_db, {h: 0.0 for h in range(200, 300)} | {h: 1.0 for h in range(500, 510)})
    # zeros between two changes: 100 of them, so each side is flagged whatever; the 1.0 run far away is not read
    assert spans(mongo_db, (195, 195), (300, 300)) == [(194, 196), (300, 301)]
    # fewer than 24 between them: both spans widen into them, and stop at the other change
    assert spans(mongo_db, (280, 280), (300, 300)) == [(280, 299), (281, 301)]


@pytest.mark.parametrize("odd", [Decimal128("0"), [0.0], {"v": 0.0}])
def test_a_value_of_an_unexpected_type_falls_back_to_the_declared_reach(mongo_db: Database, odd: Any) -> None:
    load(mongo_db, {299: odd})
    assert spans(mongo_db, (300, 301)) == [(300 - 161, 301 + 161)]
