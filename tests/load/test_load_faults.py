"""The fault matrix: each API misbehaviour against the simulator, after a clean baseline load.

Every case asserts the outcome and exit code, the station's ``load_batches`` row, the quarantine, and that
nothing else changed (the other station still lands; collection digests move only where the case says).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from elt.simulator import AuthSettings
from elt.simulator import faults as f
from tests.load_helpers import STATIONS, collection_digests, configure_source, fast_source, run_load

FAULTY, HEALTHY = STATIONS


@dataclass
class Case:
    """One fault on the first station and what must follow."""

    faults: Callable[[], list[f.Fault]]
    exit_code: int
    status: str
    error: str | None = None
    http_status: int | None = 200
    attempts: int = 1
    rejected: int = 0
    reject_reason: str | None = None
    updated: int = 0
    #: (field, value) of the updated raw row
    changed: tuple[str, Any] = ("co", -0.42)
    source: dict[str, Any] = field(default_factory=dict)


CASES = {
    "500 twice then 200": Case(lambda: [f.http_error(500), f.http_error(500)], 0, "ok", attempts=3),
    "429 with Retry-After": Case(
        lambda: [f.rate_limited(retry_after_s=1)], 0, "ok", attempts=2, source={"backoff_max_s": 5}
    ),
    "a timeout on every try": Case(
        lambda: [f.delay(3, times=None)], 1, "failed", "ReadTimeout", None, 2, source={"timeout_s": 0.3, "retries": 1}
    ),
    "a timeout once": Case(lambda: [f.delay(3)], 0, "ok", attempts=2, source={"timeout_s": 0.5}),
    "truncated JSON": Case(
        lambda: [f.truncated(0.5, close_early=False, times=None)], 1, "failed", "not valid JSON", 200
    ),
    "connection dropped mid-body once": Case(lambda: [f.truncated(0.5, close_early=True)], 0, "ok", attempts=2),
    "HTML page with 200": Case(lambda: [f.html_page(200, times=None)], 1, "failed", "HTML page", 200),
    "HTML 502 page on every try": Case(
        lambda: [f.html_page(502, times=None)], 1, "failed", "HTTP 502 (HTML page '502 Bad Gateway') after 4", 502, 4
    ),
    "401": Case(lambda: [f.unauthorized(times=None)], 1, "failed", "AIRQINO_USERNAME and AIRQINO_PASSWORD", 401),
    "empty data": Case(lambda: [f.empty_data(times=None)], 1, "failed", "empty 'data'", 200),
    "a non-numeric value (kept verbatim, flagged in staging)": Case(
        lambda: [f.rows_fault(f.non_numeric_value(5, "PM2.5", "n/a"), times=None)], 0, "ok", updated=1,
        changed=("pm25", "n/a"),
    ),
    "a negative value (kept)": Case(lambda: [f.rows_fault(f.negative_value(5, "CO", -0.42))], 0, "ok", updated=1),
    "a future timestamp": Case(
        lambda: [f.rows_fault(f.future_row(3), times=None)], 0, "ok", rejected=1,
        reject_reason="timestamp in the future",
    ),
    "a duplicate timestamp with different values": Case(
        lambda: [f.rows_fault(f.duplicate_row(5), times=None)], 0, "ok", rejected=2,
        reject_reason="duplicate timestamp with different values",
    ),
}  # fmt: skip


@pytest.fixture
def baseline(
    project_dir: Path, airqino_simulator_factory, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
):
    """A simulator (14-day window, frozen clock) and one clean load of both stations."""
    simulator = airqino_simulator_factory(window_days=14)
    monkeypatch.setenv("AIRQINO_BASE_URL", simulator.base_url)
    fast_source(project_dir, simulator.base_url)
    first = run_load(project_dir)
    assert first.exit_code == 0, first.stderr
    simulator.reset_counts()
    return simulator


@pytest.mark.parametrize("name", list(CASES))
def test_fault_matrix(name: str, project_dir: Path, baseline, mongo_db: Database) -> None:
    case = CASES[name]
    if case.source:
        configure_source(project_dir, **case.source)
    before = collection_digests(mongo_db)
    raw_before = {d["_id"]: d for d in mongo_db.raw_airqino_hourly.find()}
    baseline.set_fault(FAULTY, *case.faults())

    run = run_load(project_dir)

    assert run.exit_code == case.exit_code, run.stderr
    entry = run.station(FAULTY)
    assert entry["status"] == case.status
    assert (entry["rejected"], entry["updated"], entry["inserted"]) == (case.rejected, case.updated, 0)
    if case.error:
        assert case.error in entry["error"]
    else:
        assert entry["error"] is None
    healthy = run.station(HEALTHY)
    assert (healthy["status"], healthy["inserted"], healthy["updated"]) == ("ok", 0, 0)

    audit = mongo_db.load_batches.find_one({"_id": f"{run.result['batch_id']}/{FAULTY}"})
    assert (audit["status"], audit["http_status"], audit["attempts"]) == (
        case.status,
        case.http_status,
        case.attempts,
    )
    assert audit["error"] == entry["error"]
    assert audit["url"] == f"{baseline.base_url}/v3/getStationHourlyAvg/{FAULTY}"
    assert baseline.request_count(FAULTY) == case.attempts

    rejects = list(mongo_db.raw_airqino_rejects.find())
    assert len(rejects) == case.rejected
    assert all(
        r["station_id"] == FAULTY and r["reason"].startswith(case.reject_reason or "") for r in rejects
    )
    assert all(
        r["_batch_id"] == run.result["batch_id"] and r["original_json"].startswith("{") for r in rejects
    )

    after = collection_digests(mongo_db)
    if not case.updated:
        assert after["raw_airqino_hourly"] == before["raw_airqino_hourly"]
        assert after["raw_airqino_history"] == before["raw_airqino_history"]
    else:
        changed = [d for d in mongo_db.raw_airqino_hourly.find() if d != raw_before[d["_id"]]]
        key, value = case.changed
        assert len(changed) == case.updated and changed[0][key] == value and changed[0]["_revision"] == 1
        assert mongo_db.raw_airqino_history.count_documents({}) == case.updated


def test_the_same_rejects_delivered_again_are_not_quarantined_twice(
    project_dir: Path, baseline, mongo_db
) -> None:
    baseline.set_fault(FAULTY, f.rows_fault(f.non_numeric_value(5), f.future_row(2), times=None))
    run_load(project_dir)
    before = collection_digests(mongo_db)
    again = run_load(project_dir)
    assert again.station(FAULTY)["rejected"] == 1  # the future row; the non-numeric value is landed
    assert collection_digests(mongo_db) == before
    assert mongo_db.raw_airqino_rejects.count_documents({}) == 1


def test_auth_failure_with_a_token_never_leaks_the_token(
    project_dir: Path, airqino_simulator_factory, mongo_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = airqino_simulator_factory(window_days=2, auth=AuthSettings())
    fast_source(project_dir, simulator.base_url, auth={"mode": "bearer"})
    monkeypatch.setenv("AIRQINO_BASE_URL", simulator.base_url)
    monkeypatch.setenv("AIRQINO_TOKEN", "tok-VERY-SECRET-123")
    run = run_load(project_dir)
    assert run.exit_code == 1
    assert all(s["status"] == "failed" and "HTTP 401" in s["error"] for s in run.result["stations"])
    assert "AIRQINO_TOKEN" in run.station(FAULTY)["error"]
    audits = list(mongo_db.load_batches.find())
    assert "tok-VERY-SECRET-123" not in repr(audits) + run.stderr + repr(run.result)
    assert mongo_db.raw_airqino_hourly.count_documents({}) == 0


def test_password_grant_against_the_simulated_keycloak(
    project_dir: Path, airqino_simulator_factory, mongo_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = airqino_simulator_factory(window_days=2, auth=AuthSettings())
    auth = {"mode": "password", "token_url": simulator.token_url, "client_id": "airqino-client"}
    fast_source(project_dir, simulator.base_url, auth=auth)
    monkeypatch.setenv("AIRQINO_BASE_URL", simulator.base_url)
    monkeypatch.setenv("AIRQINO_USERNAME", "sim-user")
    monkeypatch.setenv("AIRQINO_PASSWORD", "sim-password")
    run = run_load(project_dir)
    assert run.exit_code == 0, run.stderr
    assert all(s["status"] == "ok" and s["inserted"] > 20 for s in run.result["stations"])
    assert simulator.token_request_count() == 1
    assert "sim-password" not in run.stderr + repr(list(mongo_db.load_batches.find()))
