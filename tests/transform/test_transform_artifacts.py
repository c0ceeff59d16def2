"""The CLI (elt transform / elt test), exit codes, and the shape of target/manifest.json and run_results.json."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from elt.config import load_project
from elt.transform.task import run_tests
from tests.reference_daily import hours, raw_document, utc

STATIONS = ("283164601", "283181971")
#: Only this suite's models (other parts of the project ship models in aggregations/ too).
SELECT = ("-s", "+daily_sensor_averages +station_freshness")
LOADED_AT = utc(2024, 3, 3) + timedelta(minutes=30)


def cli(project_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--project-dir", str(project_dir), *args])


@pytest.fixture
def landed(project_dir: Path, mongo_db: Database) -> Path:
    """Two days of both configured stations, landed by hand."""
    docs = [raw_document(station, ts, {"co": 0.5 + i % 3 / 10, "pm25": 10.0 + i % 4}, loaded_at=LOADED_AT)
            for station in STATIONS for i, ts in enumerate(hours(utc(2024, 3, 1), 48))]  # fmt: skip
    mongo_db.raw_airqino_hourly.insert_many(docs)
    return project_dir


def test_transform_cli_writes_dbt_shaped_artifacts(landed: Path, mongo_db: Database) -> None:
    outcome = cli(landed, "transform", "--json", *SELECT)
    assert outcome.exit_code == 0, outcome.stderr
    run_results = json.loads((landed / "target" / "run_results.json").read_text())
    assert json.loads(outcome.stdout) == run_results
    assert set(run_results) == {"metadata", "results", "elapsed_time", "args"}
    assert {"generated_at", "invocation_id", "elt_version", "schema_version"} <= set(run_results["metadata"])
    assert run_results["args"]["which"] == "transform" and run_results["args"]["full_refresh"] is False
    assert [r["unique_id"] for r in run_results["results"]] == [
        "model.stg_airqino_hourly", "model.daily_sensor_averages", "model.station_day_last_hours",
        "model.station_freshness",
    ]  # fmt: skip
    for result in run_results["results"]:
        assert set(result) == {"unique_id", "status", "timing", "thread_id", "execution_time", "adapter_response",
                               "message", "failures", "relation_name"}  # fmt: skip
        assert result["status"] == "success"
        assert result["timing"][0]["name"] == "execute" and result["timing"][0]["started_at"]
        assert result["relation_name"] == f"{mongo_db.name}.{result['unique_id'].split('.')[1]}"
        assert result["adapter_response"]["mode"] == "full"
    documents = {r["unique_id"]: r["adapter_response"]["rows_affected"] for r in run_results["results"]}
    assert documents == {"model.stg_airqino_hourly": 96, "model.daily_sensor_averages": 4,
                         "model.station_day_last_hours": 4, "model.station_freshness": 4}  # fmt: skip
    assert mongo_db.daily_sensor_averages.find_one()["_run_id"] == run_results["metadata"]["invocation_id"]

    manifest = json.loads((landed / "target" / "manifest.json").read_text())
    assert set(manifest) == {"metadata", "nodes", "sources", "parent_map", "child_map"}
    daily = manifest["nodes"]["model.daily_sensor_averages"]
    assert (
        daily["resource_type"] == "model"
        and daily["original_file_path"] == "aggregations/marts/daily_sensor_averages.yml"
    )
    assert daily["depends_on"]["nodes"] == ["model.stg_airqino_hourly"]
    assert daily["config"]["materialized"] == "incremental" and daily["config"]["unique_key"] == [
        "station_id",
        "day",
    ]
    assert daily["compiled_pipeline"][0]["$group"]["_id"] == {"station_id": "$station_id", "day": "$day"}
    assert daily["columns"]["pm25_mean"]["data_type"] == "number"
    unique = manifest["nodes"]["test.unique_daily_sensor_averages_station_id_day"]
    assert unique["test_metadata"] == {"name": "unique", "kwargs": {"columns": ["station_id", "day"]}}
    assert manifest["sources"]["source.airqino.hourly"]["identifier"] == "raw_airqino_hourly"
    assert manifest["parent_map"]["model.stg_airqino_hourly"] == ["source.airqino.hourly"]
    assert "model.daily_sensor_averages" in manifest["child_map"]["model.stg_airqino_hourly"]
    assert (
        "test.unique_daily_sensor_averages_station_id_day"
        in manifest["child_map"]["model.daily_sensor_averages"]
    )


def test_failing_model_exits_1_and_skips_its_children(landed: Path, mongo_db: Database) -> None:
    marts = landed / "aggregations" / "marts"
    (marts / "boom.yml").write_text(
        "name: boom\nfrom: \"{{ ref('daily_sensor_averages') }}\"\npipeline:\n"
        "  - $addFields: {x: {$divide: [1, 0]}}\n"
    )
    (marts / "after_boom.yml").write_text("name: after_boom\nfrom: \"{{ ref('boom') }}\"\npipeline: []\n")
    outcome = cli(landed, "transform", *SELECT, "-s", "boom+")
    assert outcome.exit_code == 1
    statuses = {
        r["unique_id"]: r["status"]
        for r in json.loads((landed / "target" / "run_results.json").read_text())["results"]
    }
    assert statuses["model.boom"] == "error" and statuses["model.after_boom"] == "skipped"
    assert statuses["model.daily_sensor_averages"] == "success"
    assert "boom" not in mongo_db.list_collection_names()
    assert not any(name.startswith("__elt_tmp") for name in mongo_db.list_collection_names())


def test_select_runs_only_the_selection(landed: Path, mongo_db: Database) -> None:
    assert cli(landed, "transform", "-s", "+daily_sensor_averages").exit_code == 0
    assert "station_freshness" not in mongo_db.list_collection_names()
    assert mongo_db.daily_sensor_averages.count_documents({}) == 4


def _test_results(project_dir: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((project_dir / "target" / "run_results.json").read_text())["results"]
    return {r["unique_id"].removeprefix("test."): r for r in results}


def test_elt_test_passes_on_clean_data_and_fails_on_bad_data(landed: Path, mongo_db: Database) -> None:
    assert cli(landed, "transform", *SELECT).exit_code == 0
    fresh = run_tests(load_project(landed), mongo_db, SELECT[1:], now=LOADED_AT + timedelta(hours=1))
    assert fresh.exit_code == 0, fresh.error
    assert {r.status for r in fresh.results} <= {"pass", "warn"}

    bad_hour = {**mongo_db.stg_airqino_hourly.find_one({}, {"_id": 0}), "ts": utc(2030, 1, 1), "hour_local": 30,
                "station_id": "ELSEWHERE"}  # fmt: skip
    mongo_db.stg_airqino_hourly.insert_one(bad_hour)
    outcome = cli(landed, "test", "--store-failures", "-s", "stg_airqino_hourly")
    assert outcome.exit_code == 1
    results = _test_results(landed)
    assert results["accepted_range_stg_airqino_hourly_hour_local"]["status"] == "fail"
    assert results["accepted_range_stg_airqino_hourly_hour_local"]["failures"] == 1
    assert results["accepted_values_stg_airqino_hourly_station_id"]["status"] == "warn"  # severity: warn
    assert results["unique_stg_airqino_hourly_station_id_ts"]["status"] == "pass"
    assert not any(name.startswith("daily") for name in results)  # only the selected model's tests
    stored = mongo_db.elt_test_failures.find_one(
        {"test": "test.accepted_range_stg_airqino_hourly_hour_local"}
    )
    assert stored["failure"]["hour_local"] == 30 and stored["run_id"]

    mongo_db.stg_airqino_hourly.delete_one({"station_id": "ELSEWHERE"})
    assert cli(landed, "test", "--store-failures", "-s", "stg_airqino_hourly").exit_code == 0
    assert (
        mongo_db.elt_test_failures.count_documents(
            {"test": "test.accepted_range_stg_airqino_hourly_hour_local"}
        )
        == 0
    )


def test_relationships_and_completeness_report_failing_groups(landed: Path, mongo_db: Database) -> None:
    assert cli(landed, "transform", *SELECT).exit_code == 0
    mongo_db.daily_sensor_averages.insert_one({"station_id": "ORPHAN", "day": "2024-03-05", "co_hours": 0,
                                               "pm25_hours": 0, "co_complete": False, "pm25_complete": False})  # fmt: skip
    result = run_tests(load_project(landed), mongo_db, select=["daily_sensor_averages"], now=LOADED_AT)
    by_name = {r.unique_id: r for r in result.results}
    orphan = by_name["test.relationships_daily_sensor_averages_station_id"]
    assert orphan.status == "fail" and orphan.failures == 1
    completeness = by_name["test.completeness_daily_sensor_averages_pm25_complete_days"]
    assert completeness.status == "warn" and completeness.failures == 1  # ORPHAN has no complete day
    assert result.exit_code == 1


def test_source_freshness_warns_then_errors(landed: Path, mongo_db: Database) -> None:
    project = load_project(landed)
    name = "test.source_freshness_airqino_hourly"
    statuses = [run_tests(project, mongo_db, select=["source:airqino"], now=LOADED_AT + timedelta(hours=h))
                .result(name).status for h in (1, 5, 30)]  # fmt: skip
    assert statuses == ["pass", "warn", "fail"]


def test_outputs_are_indexed_once_per_key_pattern(landed: Path, mongo_db: Database) -> None:
    assert cli(landed, "transform", *SELECT).exit_code == 0
    for name, unique in (
        ("stg_airqino_hourly", ("station_id", "ts")),
        ("daily_sensor_averages", ("station_id", "day")),
    ):
        indexes = list(mongo_db[name].list_indexes())
        patterns = [tuple(index["key"]) for index in indexes]
        assert len(patterns) == len(set(patterns)), patterns  # MongoDB refuses duplicates with other options
        assert any(tuple(i["key"]) == unique and i.get("unique") for i in indexes)
        assert ("_updated_at",) in patterns
    raw_patterns = [tuple(index["key"]) for index in mongo_db.raw_airqino_hourly.list_indexes()]
    assert ("_loaded_at",) in raw_patterns and ("station_id", "ts") in raw_patterns
