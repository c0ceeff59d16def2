"""Audits: inside ``elt run`` the data tests run on the partitions the run wrote (its change records), with the
same verdicts as a full pass on those documents; ``elt test`` keeps the full pass."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.models.changes import read_changes
from elt.transform.task import last_full_pass, run_tests, run_transform
from tests.load_helpers import fast_source, run_load
from tests.reference_daily import OWN_MODELS, collection_rows


@pytest.fixture
def hourly(project_dir: Path, mongo_db: Database, airqino_simulator_factory) -> Any:
    """Two weeks of the two brief stations, transformed, then one hourly load + transform (run id "hour-1")."""
    sim = airqino_simulator_factory(window_days=14)
    fast_source(project_dir, sim.base_url)
    assert run_load(project_dir).exit_code == 0
    assert (
        run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS, run_id="build").exit_code == 0
    )
    sim.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    result = run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS, run_id="hour-1")
    assert result.exit_code == 0, result.error
    return sim


def test_the_change_record_holds_index_friendly_scopes_per_station(hourly, mongo_db: Database) -> None:
    changes = read_changes(mongo_db, "hour-1")
    staging = changes.get("stg_airqino_hourly")
    assert staging is not None and not staging.full
    assert {s["station_id"] for s in staging.scopes} == {"283164601", "283181971"}
    for scope in staging.scopes:
        assert set(scope) == {"station_id", "ts"} and set(scope["ts"]) == {"$gte", "$lte"}
    daily = changes.get("daily_sensor_averages")
    assert daily is not None and all(set(s["day"]) == {"$gte", "$lte"} for s in daily.scopes)
    raw = changes.get("raw_airqino_hourly")
    assert raw is not None and {s["station_id"] for s in raw.scopes} == {"283164601", "283181971"}
    assert read_changes(mongo_db, "build").get("stg_airqino_hourly").full


def _staging_spans(db: Database, run_id: str) -> dict[str, float]:
    """Hours spanned by each station's staging scope in the run's change record."""
    scopes = read_changes(db, run_id).get("stg_airqino_hourly").scopes
    return {s["station_id"]: (s["ts"]["$lte"] - s["ts"]["$gte"]).total_seconds() / 3600 for s in scopes}


def test_a_batch_records_what_it_wrote_and_after_an_interrupted_run_what_it_recomputed(
    hourly, project_dir: Path, mongo_db: Database
) -> None:
    # an hourly fetch rewrites two hours per station (the one that became final, the new provisional one): the
    # batch recomputed them and the short QC runs next to them, and its record holds the two it wrote
    written = Counter(d["station_id"] for d in mongo_db.stg_airqino_hourly.find({"_run_id": "hour-1"}))
    assert written == {"283164601": 2, "283181971": 2}
    assert _staging_spans(mongo_db, "hour-1") == {"283164601": 1.0, "283181971": 1.0}
    # a run that died while writing left its mark: the next run records every range it recomputed, since the
    # documents the dead run wrote are in no record (and are not rewritten now: they are already up to date)
    mongo_db.elt_state.update_one({"_id": "model.stg_airqino_hourly"},
                                  {"$set": {"incremental_pending": {"run_id": "killed"}}})  # fmt: skip
    hourly.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    result = run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS, run_id="hour-2")
    assert result.exit_code == 0, result.error
    assert all(span >= 161 for span in _staging_spans(mongo_db, "hour-2").values())
    assert "incremental_pending" not in mongo_db.elt_state.find_one({"_id": "model.stg_airqino_hourly"})
    hourly.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    assert (
        run_transform(load_project(project_dir), mongo_db, select=OWN_MODELS, run_id="hour-3").exit_code == 0
    )
    assert set(_staging_spans(mongo_db, "hour-3").values()) == {1.0}


def test_an_hourly_batch_recomputes_the_rewritten_hours_and_the_short_runs_next_to_them(
    hourly, project_dir: Path, mongo_db: Database
) -> None:
    """Staging's ``runs:``: an hourly fetch recomputes the two rewritten hours per station, widened only by a run
    shorter than 24 hours that touches them (the dead CO sensor's run of zeros is longer: it is not), and reads
    161 hours around those, not 161 hours either side of 161 hours; a ``--full-refresh`` gives the same."""
    hourly.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    result = run_transform(
        load_project(project_dir), mongo_db, select=["stg_airqino_hourly"], run_id="hour-2"
    )
    assert result.exit_code == 0, result.error
    response = next(r for r in result.results if r.unique_id == "model.stg_airqino_hourly").adapter_response
    assert response["mode"] == "incremental" and response["partition_count"] == 2
    spans = [(p["to"] - p["from"]).total_seconds() / 3600 for p in response["partitions"]]
    assert all(1 <= span < 24 for span in spans), spans
    incremental = collection_rows(mongo_db, "stg_airqino_hourly", ("station_id", "ts"))
    full = run_transform(
        load_project(project_dir), mongo_db, select=["stg_airqino_hourly"], full_refresh=True
    )
    assert full.exit_code == 0, full.error
    assert collection_rows(mongo_db, "stg_airqino_hourly", ("station_id", "ts")) == incremental


def test_an_audit_gives_the_full_pass_verdicts_and_skips_unchanged_relations(
    hourly, project_dir: Path, mongo_db: Database
) -> None:
    project = load_project(project_dir)
    audit = run_tests(project, mongo_db, run_id="hour-1", changes=read_changes(mongo_db, "hour-1"))
    full = run_tests(project, mongo_db)
    audited = {r.unique_id: r.status for r in audit.results}
    assert audited and audit.ok, audit.error
    assert all(full.result(uid).status == status for uid, status in audited.items())
    assert audit.counts()["scope"] == "changed" and full.counts()["scope"] == "full"
    assert last_full_pass(mongo_db) is not None


def test_a_table_rebuild_records_the_keys_it_changed_and_the_audit_reads_only_those(
    hourly, project_dir: Path, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elt.transform import materialize

    monkeypatch.setattr(materialize, "KEY_SCOPES_PER_DOCUMENT", 1)  # the fixture's tables are small
    project = load_project(project_dir)
    hourly.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    assert run_transform(project, mongo_db, select=["+station_freshness"], run_id="hour-2").exit_code == 0
    fresh = read_changes(mongo_db, "hour-2").get("station_freshness")
    assert fresh is not None and not fresh.full and fresh.scopes
    assert all(set(s) == {"station_id", "pollutant"} for s in fresh.scopes)
    rewritten = mongo_db.station_freshness.find({"_run_id": "hour-2"})
    assert {(s["station_id"], s["pollutant"]) for s in fresh.scopes} == {
        (d["station_id"], d["pollutant"]) for d in rewritten
    }
    audit = run_tests(project, mongo_db, run_id="hour-2", changes=read_changes(mongo_db, "hour-2"))
    full = run_tests(project, mongo_db)
    audited = {r.unique_id: r.status for r in audit.results if "station_freshness" in r.unique_id}
    assert audited and all(full.result(uid).status == status for uid, status in audited.items())
    # a rebuild that died left its mark: the next one records the whole table (what the dead one wrote is in
    # no record, and comes out unchanged now)
    mongo_db.elt_state.update_one({"_id": "model.station_freshness"},
                                  {"$set": {"full_build_pending": {"run_id": "killed", "reason": "test"}}})  # fmt: skip
    hourly.advance(hours=1)
    assert run_load(project_dir).exit_code == 0
    assert run_transform(project, mongo_db, select=["+station_freshness"], run_id="hour-3").exit_code == 0
    assert read_changes(mongo_db, "hour-3").get("station_freshness").full


def test_a_bad_value_in_a_changed_partition_fails_the_audit_like_the_full_pass(
    hourly, project_dir: Path, mongo_db: Database
) -> None:
    project = load_project(project_dir)
    changes = read_changes(mongo_db, "hour-1")
    scope = changes.get("stg_airqino_hourly").scopes[0]
    inside = mongo_db.stg_airqino_hourly.find_one(scope, sort=[("ts", -1)])
    mongo_db.stg_airqino_hourly.update_one({"_id": inside["_id"]}, {"$set": {"hour_local": 99}})
    # a bad value outside what the run wrote is the daily full pass's job, not this audit's
    outside = mongo_db.stg_airqino_hourly.find_one({"station_id": scope["station_id"]}, sort=[("ts", 1)])
    mongo_db.stg_airqino_hourly.update_one({"_id": outside["_id"]}, {"$set": {"hour_local": -5}})

    audit = run_tests(project, mongo_db, run_id="hour-1", changes=changes, write_artifacts=False)
    full = run_tests(project, mongo_db, write_artifacts=False)

    uid = next(
        r.unique_id for r in full.results if "accepted_range" in r.unique_id and "hour_local" in r.unique_id
    )
    assert audit.result(uid).status == "fail" and audit.result(uid).failures == 1
    assert audit.result(uid).message == "1 failing document"
    assert full.result(uid).failures == 2
    assert not audit.ok and audit.exit_code == 1


def test_elt_run_audits_except_on_the_first_run_of_the_day_or_when_asked(mongo_db: Database) -> None:
    from datetime import datetime, timezone

    from elt.models.changes import RunChanges, record_changes
    from elt.run.steps import StepContext, full_test_pass_reason
    from elt.transform.task import record_full_pass

    ctx = StepContext(project=None, db=mongo_db, window=None, run_id="r1")  # type: ignore[arg-type]
    morning = datetime(2024, 9, 9, 8, tzinfo=timezone.utc)
    assert full_test_pass_reason(ctx, morning) == "no change record of this run (its transform did not run)"
    record_changes(mongo_db, RunChanges("r1"))
    assert full_test_pass_reason(ctx, morning) == "no full test pass recorded yet"
    record_full_pass(mongo_db, datetime(2024, 9, 9, 0, 5, tzinfo=timezone.utc))
    assert full_test_pass_reason(ctx, morning) is None
    assert (
        full_test_pass_reason(ctx, datetime(2024, 9, 10, 0, 10, tzinfo=timezone.utc))
        == "first run of the day (UTC)"
    )
    ctx.full_tests = True
    assert full_test_pass_reason(ctx, morning) == "--full-tests"


def test_batched_single_query_tests_give_the_verdicts_of_one_query_per_test(
    hourly, project_dir: Path, mongo_db: Database
) -> None:
    from elt.models.project import load_models
    from elt.transform import checks
    from elt.transform.audits import batched_outcomes

    mp = load_models(load_project(project_dir))
    changes = read_changes(mongo_db, "hour-1")
    scopes = changes.get("stg_airqino_hourly").scopes
    inside = mongo_db.stg_airqino_hourly.find_one(scopes[0], sort=[("ts", -1)])
    mongo_db.stg_airqino_hourly.update_one({"_id": inside["_id"]}, {"$set": {"hour_local": 99, "day": None}})
    planned = [(uid, t, scopes) for uid, t in mp.tests.items() if t.attached_to == "model.stg_airqino_hourly"]

    batched = batched_outcomes(mongo_db, mp, planned)

    assert len(batched) >= 4  # not_null, accepted_values, accepted_range and unique of staging, together
    for uid, outcome in batched.items():
        alone = checks.run_test(mongo_db, mp, mp.tests[uid], inside["ts"], scopes)
        assert (outcome.status, outcome.failures, outcome.message) == (
            alone.status,
            alone.failures,
            alone.message,
        )
        assert len(outcome.sample) == len(alone.sample)
    assert {o.status for o in batched.values()} >= {"pass", "fail"}


def test_scoped_completeness_counts_what_a_direct_count_of_each_changed_station_gives(
    hourly, project_dir: Path, mongo_db: Database
) -> None:
    from datetime import timedelta

    from elt.models.project import load_models
    from elt.transform.checks import _scoped_completeness_groups

    tests = {t.name: t for t in load_models(load_project(project_dir)).tests.values()}
    changes = read_changes(mongo_db, "hour-1")
    # the last 7 days before each station's newest hour (the scopes end at it: the short probes answer)
    recent = tests["completeness_stg_airqino_hourly_pm25_last_7_days"]
    scopes = changes.get("stg_airqino_hourly").scopes
    groups = _scoped_completeness_groups(mongo_db, recent, "stg_airqino_hourly", scopes)
    assert len(groups) == 2
    for group, expected, counted, first, last in groups:
        rows = list(mongo_db.stg_airqino_hourly.find(group, {"ts": 1, "pm25_valid": 1}))
        newest = max(r["ts"] for r in rows)
        start = max(min(r["ts"] for r in rows), newest - timedelta(days=7) + timedelta(hours=1))
        assert (first, last) == (start, newest)
        assert expected == int((newest - start) / timedelta(hours=1)) + 1 == 168
        assert counted == sum(1 for r in rows if start <= r["ts"] <= newest and r["pm25_valid"] is True)
    # without event_time: every document of the station, and those counted
    days = tests["completeness_daily_sensor_averages_pm25_complete_days"]
    scopes = changes.get("daily_sensor_averages").scopes
    groups = _scoped_completeness_groups(mongo_db, days, "daily_sensor_averages", scopes)
    assert len(groups) == 2
    for group, expected, counted, _, _ in groups:
        assert expected == mongo_db.daily_sensor_averages.count_documents(group) > 0
        assert counted == mongo_db.daily_sensor_averages.count_documents({**group, "pm25_complete": True})
