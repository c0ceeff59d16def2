"""``elt load`` end to end on a real wire server: idempotent reruns, revisions, provisional hours, audit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pymongo.database import Database

from tests.load_helpers import (
    ARCHIVE_END,
    STATIONS,
    VOLATILE_FIELDS,
    collection_digests,
    fast_source,
    run_load,
    run_load_process,
    write_archive,
)

SIM_NOW = datetime(2024, 9, 9, 10, 30, tzinfo=timezone.utc)
NEWEST = datetime(2024, 9, 9, 10, tzinfo=timezone.utc)


@pytest.fixture
def live(project_dir: Path, airqino_simulator_factory, monkeypatch: pytest.MonkeyPatch):
    """The project pointed at the simulator: two stations, a 21-day window, clock frozen at 2024-09-09 10:30."""
    simulator = airqino_simulator_factory(window_days=21)
    fast_source(project_dir, simulator.base_url)
    monkeypatch.setenv("AIRQINO_BASE_URL", simulator.base_url)
    return simulator


def test_same_response_twice_changes_nothing(project_dir: Path, live, mongo_db: Database) -> None:
    first = run_load(project_dir)
    assert first.exit_code == 0, first.stderr
    before = collection_digests(mongo_db)
    second = run_load(project_dir)
    assert second.exit_code == 0, second.stderr
    for station_id in STATIONS:
        entry = second.station(station_id)
        assert (entry["status"], entry["inserted"], entry["updated"], entry["rejected"]) == ("ok", 0, 0, 0)
        assert entry["unchanged"] == entry["received"] == first.station(station_id)["inserted"] > 400
    assert collection_digests(mongo_db) == before
    assert mongo_db.load_batches.count_documents({"status": "ok"}) == 4


def test_next_hour_finalizes_the_provisional_row_and_keeps_its_previous_version(
    project_dir: Path, live, mongo_db: Database
) -> None:
    run_load(project_dir)
    raw = mongo_db.raw_airqino_hourly
    assert [d["ts"] for d in raw.find({"provisional": True}, sort=[("station_id", 1)])] == [NEWEST, NEWEST]
    count_before = raw.count_documents({})

    live.advance(hours=1)
    second = run_load(project_dir)

    for station_id in STATIONS:
        entry = second.station(station_id)
        assert (entry["inserted"], entry["updated"], entry["rejected"]) == (1, 1, 0), entry
        finalized = raw.find_one({"_id": f"{station_id}|2024-09-09T10:00Z"})
        assert (finalized["provisional"], finalized["_revision"]) == (False, 1)
        newest = raw.find_one({"_id": f"{station_id}|2024-09-09T11:00Z"})
        assert (newest["provisional"], newest["_revision"]) == (True, 0)
        history = list(mongo_db.raw_airqino_history.find({"station_id": station_id}))
        assert len(history) == 1
        old = history[0]
        assert (old["raw_id"], old["provisional"], old["_revision"]) == (finalized["_id"], True, 0)
        assert old["change"] == "content+finalized"
        assert old["_content_hash"] != finalized["_content_hash"]
        assert (old["_valid_from"], old["_valid_to"]) == (SIM_NOW, SIM_NOW + timedelta(hours=1))
        assert finalized["_first_seen"] == SIM_NOW and finalized["_last_seen"] == SIM_NOW + timedelta(hours=1)
    # The rolling window dropped its oldest hour: raw keeps it (never deleted), one new hour per station.
    assert raw.count_documents({}) == count_before + 2
    assert raw.count_documents({"provisional": True}) == 2


def test_refetch_within_the_hour_updates_only_the_still_provisional_row(
    project_dir: Path, live, mongo_db: Database
) -> None:
    run_load(project_dir)
    live.advance(minutes=20)
    second = run_load(project_dir)
    assert [(second.station(s)["inserted"], second.station(s)["updated"]) for s in STATIONS] == [
        (0, 1),
        (0, 1),
    ]
    changes = [h["change"] for h in mongo_db.raw_airqino_history.find()]
    assert changes == ["content", "content"]
    assert mongo_db.raw_airqino_hourly.count_documents({"provisional": True, "ts": NEWEST}) == 2


def test_archive_marks_its_newest_hour_provisional_unless_fetched_later(
    project_dir: Path, tmp_path: Path, mongo_db: Database
) -> None:
    archive = write_archive(tmp_path / "a", ARCHIVE_END, hours=48)
    loaded = run_load(project_dir, "--from-dir", str(archive))
    assert loaded.exit_code == 0, loaded.stderr
    raw = mongo_db.raw_airqino_hourly
    assert sorted(d["_id"] for d in raw.find({"provisional": True})) == [
        f"{s}|2024-09-09T10:00Z" for s in STATIONS
    ]
    assert raw.find_one({"provisional": True})["_last_seen"] == ARCHIVE_END + timedelta(minutes=30)

    later = run_load(project_dir, "--from-dir", str(archive), "--fetched-at", "2024-09-09 11:05")
    assert [later.station(s)["updated"] for s in STATIONS] == [1, 1]
    assert raw.count_documents({"provisional": True}) == 0
    assert [h["change"] for h in mongo_db.raw_airqino_history.find()] == ["finalized", "finalized"]


def test_older_archive_after_newer_data_changes_nothing(
    project_dir: Path, tmp_path: Path, mongo_db: Database
) -> None:
    old = write_archive(tmp_path / "old", ARCHIVE_END, hours=72)
    new = write_archive(tmp_path / "new", ARCHIVE_END + timedelta(hours=24), hours=72, revise=0.3)
    run_load(project_dir, "--from-dir", str(new))
    before = collection_digests(mongo_db)
    replay = run_load(project_dir, "--from-dir", str(old))
    assert replay.exit_code == 0
    for station_id in STATIONS:
        entry = replay.station(station_id)
        assert (entry["updated"], entry["rejected"]) == (0, 0)
        assert entry["inserted"] > 0  # hours older than the newer window are still new
    assert collection_digests(mongo_db)["raw_airqino_history"] == before["raw_airqino_history"]
    audit = mongo_db.load_batches.find_one({"batch_id": replay.result["batch_id"], "station_id": STATIONS[0]})
    assert audit["stale"] > 0
    assert audit["stale"] + audit["unchanged"] + audit["inserted"] == audit["received"]


def test_since_until_land_only_hours_inside_the_window(
    project_dir: Path, tmp_path: Path, mongo_db: Database
) -> None:
    archive = write_archive(tmp_path / "a", ARCHIVE_END, hours=48)
    run = run_load(
        project_dir, "--from-dir", str(archive), "--station", STATIONS[0], "--since", "2024-09-09", "--until",
        "2024-09-09 06:00",
    )  # fmt: skip
    assert run.exit_code == 0
    stamps = sorted(d["ts"] for d in mongo_db.raw_airqino_hourly.find())
    assert stamps[0] >= datetime(2024, 9, 9, tzinfo=timezone.utc)
    assert stamps[-1] == datetime(2024, 9, 9, 5, tzinfo=timezone.utc)
    assert {d["station_id"] for d in mongo_db.raw_airqino_hourly.find()} == {STATIONS[0]}
    audit = mongo_db.load_batches.find_one()
    assert audit["outside_window"] == audit["received"] - audit["inserted"] > 0


def test_file_stems_map_to_stations_and_a_missing_file_fails_only_its_station(
    project_dir: Path, tmp_path: Path, mongo_db: Database
) -> None:
    archive = write_archive(tmp_path / "a", ARCHIVE_END, hours=24)
    (archive / f"{STATIONS[0]}.json").rename(archive / "station1_data.json")
    (archive / f"{STATIONS[1]}.json").unlink()
    run = run_load(project_dir, "--from-dir", str(archive), "--map", f"station1_data={STATIONS[0]}")
    assert run.exit_code == 1
    assert run.station(STATIONS[0])["status"] == "ok" and run.station(STATIONS[0])["inserted"] > 20
    failed = run.station(STATIONS[1])
    assert failed["status"] == "failed" and f"{STATIONS[1]}.json" in failed["error"]
    assert mongo_db.load_batches.find_one({"station_id": STATIONS[1]})["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--station", "999"], "unknown station '999'"),
        (["--map", "a=1"], "--map and --fetched-at only apply with --from-dir"),
        (["--since", "2024-09-09", "--until", "2024-09-01"], "must be before --until"),
        (["--since", "yesterday"], "is not a time"),
    ],
)
def test_usage_errors_exit_2(project_dir: Path, args: list[str], message: str) -> None:
    run = run_load(project_dir, *args)
    assert run.exit_code == 2
    assert message in run.stderr


def test_audit_row_describes_the_station_run(project_dir: Path, live, mongo_db: Database) -> None:
    run = run_load(project_dir, "--station", STATIONS[1])
    entry = run.station(STATIONS[1])
    audit = mongo_db.load_batches.find_one({"_id": f"{run.result['batch_id']}/{STATIONS[1]}"})
    assert audit["url"] == f"{live.base_url}/v3/getStationHourlyAvg/{STATIONS[1]}"
    assert (audit["status"], audit["http_status"], audit["error"]) == ("ok", 200, None)
    assert audit["bytes"] > 50_000
    for key in ("received", "inserted", "updated", "unchanged", "rejected"):
        assert audit[key] == entry[key]
    assert audit["last_ts"] == NEWEST and audit["first_ts"] < NEWEST - timedelta(days=20)
    assert audit["fetched_at"] == SIM_NOW
    assert audit["seconds"] > 0 and audit["started_at"] <= audit["finished_at"]
    assert (
        mongo_db.raw_airqino_hourly.find_one({"station_id": STATIONS[1]})["_batch_id"]
        == run.result["batch_id"]
    )


def test_two_stations_one_year_throughput_is_reported(
    project_dir: Path, airqino_simulator, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRQINO_BASE_URL", airqino_simulator.base_url)
    run = run_load_process(
        project_dir
    )  # its own process, as in production: no GIL shared with the test server
    assert run.exit_code == 0, run.stderr
    received = sum(s["received"] for s in run.result["stations"])
    assert received > 16_000
    assert run.result["rows_per_second"] > 0
    assert "rows/s" in run.stderr
    print(f"\nelt load, 2 stations x 365 days, {received} rows: {run.result['rows_per_second']} rows/s")


def test_volatile_fields_are_only_write_metadata() -> None:
    assert {"_loaded_at", "_batch_id", "_replaced_by_batch", "_rejected_at"} == VOLATILE_FIELDS


def _count_validated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the number of rows each station's response sends to validation (``parse_rows``)."""
    import elt.load.task as load_task

    validated: list[int] = []
    real_parse = load_task.parse_rows

    def counting_parse(station_id, data, fetched_at):  # type: ignore[no-untyped-def]
        validated.append(len(data))
        return real_parse(station_id, data, fetched_at)

    monkeypatch.setattr(load_task, "parse_rows", counting_parse)
    return validated


def test_unchanged_rows_are_counted_before_validation(
    project_dir: Path, live, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hash before validate: an hourly refetch of the whole window validates only the new and changed rows."""
    assert run_load(project_dir).exit_code == 0
    validated = _count_validated(monkeypatch)
    live.advance(hours=1)
    second = run_load(project_dir)

    assert second.exit_code == 0, second.stderr
    for station_id in STATIONS:
        entry = second.station(station_id)
        assert (entry["inserted"], entry["updated"], entry["rejected"]) == (1, 1, 0), entry
        assert entry["unchanged"] == entry["received"] - 2 > 400
    # the new hour and the finalized one, per station: everything else was matched to its stored text
    assert validated == [2, 2]


def test_day_digests_of_an_older_format_are_compared_row_by_row_once(
    project_dir: Path, live, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade that changes the day digest's format costs one row-by-row comparison, never a rewrite."""
    assert run_load(project_dir).exit_code == 0
    digests = mongo_db.raw_airqino_digests
    for doc in digests.find():
        old_format = {day: value.removeprefix("v3:") for day, value in doc["days"].items()}
        digests.update_one({"_id": doc["_id"]}, {"$set": {"days": old_format}})
    before = collection_digests(mongo_db)
    validated = _count_validated(monkeypatch)
    second = run_load(project_dir)

    assert second.exit_code == 0, second.stderr
    for station_id in STATIONS:
        entry = second.station(station_id)
        assert (entry["inserted"], entry["updated"], entry["rejected"]) == (0, 0, 0), entry
        assert entry["unchanged"] == entry["received"] > 400
    assert validated == [0, 0]  # every row matched its stored text
    after = collection_digests(mongo_db)
    assert {k: v for k, v in after.items() if k != "raw_airqino_digests"} == {
        k: v for k, v in before.items() if k != "raw_airqino_digests"
    }
    for doc in digests.find():
        assert doc["days"] and all(value.startswith("v3:") for value in doc["days"].values())
