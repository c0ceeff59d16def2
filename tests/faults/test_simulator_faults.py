"""The API failing for every station at once: the load exits 1, audits each station as failed, writes no data;
once the API recovers, a rerun gives the database of a run that never saw the failure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from elt.simulator import AirQinoSimulator
from elt.simulator import faults as f
from tests.faults.helpers import FaultProject, assert_same_database, client_for, database_digest
from tests.simulator_fixtures import SIMULATOR_NOW

#: name -> (fault on every request, source settings, text every station's error must contain)
ALL_STATION_FAULTS: dict[str, tuple[Callable[[], f.Fault], dict[str, Any], str]] = {
    "HTTP 500 on every try": (lambda: f.http_error(500, times=None), {}, "HTTP 500"),
    "proxy HTML 502 page": (lambda: f.html_page(502, times=None), {}, "502"),
    "maintenance HTML page with 200": (lambda: f.html_page(200, times=None), {}, "HTML"),
    "truncated JSON body": (lambda: f.truncated(0.5, close_early=False, times=None), {}, "JSON"),
    "connection dropped mid-body": (
        lambda: f.truncated(0.4, close_early=True, times=None),
        {},
        "after 2 attempts",
    ),
    "401 without credentials": (lambda: f.unauthorized(times=None), {}, "401"),
    "429 on every try": (lambda: f.rate_limited(0, times=None), {}, "429"),
    "timeout on every try": (lambda: f.delay(3, times=None), {"timeout_s": 0.5}, "Timeout"),
}


@pytest.fixture(scope="module")
def reference(fault_project_factory: Callable[..., FaultProject], fault_simulator: AirQinoSimulator,
              mongo_server_uri: str) -> dict[str, Any]:  # fmt: skip
    """Digests of a clean run: after the load at SIMULATOR_NOW, then after the load one hour later."""
    project = fault_project_factory("simfault_ref")
    db = client_for(mongo_server_uri)[project.database]
    digests = {}
    for hours in (0, 1):
        fault_simulator.set_now(SIMULATOR_NOW + timedelta(hours=hours))
        assert project.run("load").returncode == 0
        digests[hours] = database_digest(db)
    return digests


@pytest.mark.parametrize("case", list(ALL_STATION_FAULTS))
def test_api_failing_for_all_stations_writes_nothing_and_recovers(
    case: str,
    reference: dict[int, Any],
    fault_project_factory: Callable[..., FaultProject],
    fault_simulator: AirQinoSimulator,
    mongo_server_uri: str,
) -> None:
    make_fault, source, error_text = ALL_STATION_FAULTS[case]
    project = fault_project_factory("simfault", source=source)
    db = client_for(mongo_server_uri)[project.database]
    fault_simulator.clear_faults()
    fault_simulator.set_now(SIMULATOR_NOW)
    assert project.run("load").returncode == 0
    before = database_digest(db)

    fault_simulator.set_now(SIMULATOR_NOW + timedelta(hours=1))
    for station_id in fault_simulator.stations:
        fault_simulator.set_fault(station_id, make_fault())
    try:
        failed = project.run("load", "--json")
    finally:
        fault_simulator.clear_faults()

    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    audits = list(db.load_batches.find({"status": "failed"}))
    assert sorted(a["station_id"] for a in audits) == sorted(fault_simulator.stations)
    for audit in audits:
        assert error_text in audit["error"], audit
    assert_same_database(database_digest(db), before, f"{case}: right after the failed load")

    recovered = project.run("load")
    assert recovered.returncode == 0, recovered.stderr
    assert_same_database(database_digest(db), reference[1], f"{case}: after the recovery load")
