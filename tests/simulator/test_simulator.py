"""The local AirQino simulator: response shape, clock, generated data features, faults, auth, replay, CLI."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from elt.commands.simulate import simulate
from elt.simulator import (
    AirQinoSimulator,
    AuthSettings,
    GeneratedStation,
    SimClock,
    StationSpec,
    default_stations,
)
from elt.simulator import faults as f
from elt.simulator.timeutil import hour_of
from tests.simulator_fixtures import SIMULATOR_NOW

SMART188, SMART189 = "283164601", "283181971"
ROW_KEYS = ["timestamp", "CO", "T", "T. int.", "NO2", "O3", "PM10", "PM2.5", "RH"]
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:00:00")
YEAR = 365 * 24

Factory = Callable[..., AirQinoSimulator]


def fetch(sim: AirQinoSimulator, station_id: str = SMART188, **kwargs: Any) -> requests.Response:
    return requests.get(sim.station_url(station_id), timeout=kwargs.pop("timeout", 10), **kwargs)


def rows_of(sim: AirQinoSimulator, station_id: str = SMART188) -> list[dict[str, Any]]:
    response = fetch(sim, station_id)
    assert response.status_code == 200
    return response.json()["data"]


def year_of_rows(spec: StationSpec, seed: int = 42) -> list[dict[str, Any]]:
    last = hour_of(SIMULATOR_NOW)
    return [json.loads(text) for _, text in GeneratedStation(spec, seed).final_rows(last - YEAR + 1, last)]


def runs(rows: list[dict[str, Any]], key: str, same: Callable[[Any, Any], bool]) -> list[int]:
    """Lengths of runs of consecutive rows whose ``key`` values satisfy ``same(previous, current)``."""
    lengths, current = [], 1
    for previous, row in zip(rows, rows[1:], strict=False):
        if key in previous and key in row and same(previous[key], row[key]):
            current += 1
        else:
            lengths.append(current)
            current = 1
    return [*lengths, current]


# -- shape and clock ---------------------------------------------------------------------------------------


def test_response_has_the_real_shape(airqino_simulator: AirQinoSimulator) -> None:
    payload = fetch(airqino_simulator).json()
    assert list(payload) == ["header", "data"]
    assert payload["header"] == {"station_name": "SMART188", "station_lat": 5.3693, "station_lon": -3.9588}
    data = payload["data"]
    assert YEAR * 0.9 < len(data) <= YEAR
    assert data[0]["timestamp"] >= "2023-09-10 11:00:00"
    assert data[-1]["timestamp"] == "2024-09-09 10:00:00"
    assert all(list(row) in (ROW_KEYS, ROW_KEYS[:-1]) for row in data)
    assert all(TIMESTAMP.fullmatch(row["timestamp"]) for row in data)
    assert all(isinstance(v, float) and v >= 0 for row in data for k, v in row.items() if k != "timestamp")
    stamps = [row["timestamp"] for row in data]
    assert stamps == sorted(set(stamps))


def test_same_seed_and_now_give_identical_bytes(airqino_simulator_factory: Factory) -> None:
    first, second = airqino_simulator_factory(seed=7), airqino_simulator_factory(seed=7)
    other_seed = airqino_simulator_factory(seed=8)
    assert fetch(first).content == fetch(second).content
    assert fetch(first, SMART189).content == fetch(second, SMART189).content
    assert fetch(first).content != fetch(other_seed).content


def test_newest_hour_is_provisional_and_changes_within_the_hour(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.set_now(datetime(2024, 9, 9, 10, 10, tzinfo=timezone.utc))
    early = rows_of(airqino_simulator)
    airqino_simulator.set_now(datetime(2024, 9, 9, 10, 50, tzinfo=timezone.utc))
    late = rows_of(airqino_simulator)
    assert early[:-1] == late[:-1]
    assert early[-1]["timestamp"] == late[-1]["timestamp"] == "2024-09-09 10:00:00"
    assert early[-1]["PM2.5"] != late[-1]["PM2.5"]


def test_advancing_the_clock_one_hour_adds_exactly_one_final_row(airqino_simulator: AirQinoSimulator) -> None:
    station = airqino_simulator.stations[SMART188]
    now = SIMULATOR_NOW
    while station.final_row(hour_of(now)) is None or station.final_row(hour_of(now) + 1) is None:
        now += timedelta(hours=1)
    airqino_simulator.set_now(now)
    before = rows_of(airqino_simulator)
    airqino_simulator.advance(hours=1)
    after = rows_of(airqino_simulator)

    new_hour = (now + timedelta(hours=1)).strftime("%Y-%m-%d %H:00:00")
    assert after[-1]["timestamp"] == new_hour
    finals_before = {row["timestamp"]: row for row in before[:-1]}
    finals_after = {row["timestamp"]: row for row in after[:-1]}
    window_start = (now + timedelta(hours=1) - timedelta(hours=YEAR - 1)).strftime("%Y-%m-%d %H:00:00")
    assert set(finals_after) - set(finals_before) == {before[-1]["timestamp"]}
    assert set(finals_before) - set(finals_after) == {t for t in finals_before if t < window_start}
    assert all(finals_after[t] == row for t, row in finals_before.items() if t >= window_start)
    assert finals_after[before[-1]["timestamp"]] == station.final_row(hour_of(now))
    assert finals_after[before[-1]["timestamp"]] != before[-1]


def test_date_range_query_filters_rows_and_rejects_bad_dates(airqino_simulator: AirQinoSimulator) -> None:
    params = {"start_date": "20240908-0000", "end_date": "20240908-0500"}
    data = fetch(airqino_simulator, params=params).json()["data"]
    assert [row["timestamp"][11:13] for row in data] == ["00", "01", "02", "03", "04", "05"]
    bad = fetch(airqino_simulator, params={"start_date": "2024-09-08"})
    assert bad.status_code == 400
    assert bad.json()["status"] == 400


def test_unknown_station_is_404_with_a_json_error(airqino_simulator: AirQinoSimulator) -> None:
    response = fetch(airqino_simulator, "999999999")
    assert response.status_code == 404
    assert response.json()["error"] == "Not Found"
    assert response.json()["path"] == "/v3/getStationHourlyAvg/999999999"
    assert airqino_simulator.request_count("999999999") == 1


# -- generated data features -------------------------------------------------------------------------------


def test_generated_year_has_the_documented_defects() -> None:
    smart188, smart189 = (year_of_rows(spec) for spec in default_stations(2))
    for rows in (smart188, smart189):
        hours = [hour_of(datetime.fromisoformat(row["timestamp"] + "+00:00")) for row in rows]
        assert len(rows) < YEAR  # missing hours are absent rows
        assert 0.01 <= sum("RH" not in row for row in rows) / len(rows) <= 0.03
        assert max(runs(rows, "PM2.5", lambda a, b: a == b) + runs(rows, "PM10", lambda a, b: a == b)) >= 6
        assert max(b - a for a, b in zip(hours, hours[1:], strict=False)) > 1
    assert max(runs(smart188, "CO", lambda a, b: a == b == 0.0)) >= 24 * 7  # dead CO sensor, for weeks
    alive_zero_runs = [n for n in runs(smart189, "CO", lambda a, b: a == b == 0.0) if n > 1]
    assert alive_zero_runs and max(alive_zero_runs) < 24  # low-CO nights at the floor, a few hours
    nights_present = [
        {row["timestamp"][:10] for row in rows if row["timestamp"].endswith(" 23:00:00")}
        for rows in (smart188, smart189)
    ]
    assert 365 - len(nights_present[0]) < 15 < 365 - len(nights_present[1])  # SMART189-like night outages
    assert sum(row["CO"] == 0.0 for row in smart189) > 50


def test_generated_stations_each_have_about_a_year_of_rows() -> None:
    counts = [len(year_of_rows(spec, seed=1)) for spec in default_stations(5, seed=1)]
    assert all(YEAR * 0.85 < count <= YEAR for count in counts)


# -- faults ------------------------------------------------------------------------------------------------


def test_500_twice_then_200_and_requests_are_counted(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.set_fault(SMART188, f.http_error(500, times=2))
    statuses = [fetch(airqino_simulator).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert airqino_simulator.request_count(SMART188) == 3
    assert airqino_simulator.request_count(SMART189) == 0


def test_fault_queue_is_consumed_in_order_and_persistent_faults_last(
    airqino_simulator: AirQinoSimulator,
) -> None:
    airqino_simulator.set_fault(SMART188, f.http_error(503), f.rate_limited(2), f.http_error(502, times=None))
    assert [fetch(airqino_simulator).status_code for _ in range(4)] == [503, 429, 502, 502]
    airqino_simulator.clear_faults(SMART188)
    assert fetch(airqino_simulator).status_code == 200


def test_delay_triggers_a_client_timeout(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.set_fault(SMART188, f.delay(1.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        fetch(airqino_simulator, timeout=0.3)
    assert fetch(airqino_simulator).status_code == 200


def test_truncated_body_breaks_the_read_or_the_json(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.set_fault(SMART188, f.truncated(0.5), f.truncated(0.5, close_early=False))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fetch(airqino_simulator)
    cut = fetch(airqino_simulator)
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        json.loads(cut.content)


@pytest.mark.parametrize("status", [200, 502])
def test_html_error_page(airqino_simulator: AirQinoSimulator, status: int) -> None:
    airqino_simulator.set_fault(SMART188, f.html_page(status))
    response = fetch(airqino_simulator)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")


def test_401_and_429_faults(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.set_fault(SMART188, f.unauthorized(), f.rate_limited(retry_after_s=2))
    unauthorized = fetch(airqino_simulator)
    assert (unauthorized.status_code, unauthorized.content) == (401, b"{}")
    limited = fetch(airqino_simulator)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")


def test_empty_data(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.set_fault(SMART188, f.empty_data())
    payload = fetch(airqino_simulator).json()
    assert payload["data"] == [] and payload["header"]["station_name"] == "SMART188"


def test_history_revised_ten_days_back_between_two_calls(airqino_simulator: AirQinoSimulator) -> None:
    before = rows_of(airqino_simulator)
    airqino_simulator.revise_history(SMART188, f.set_value(240, "PM2.5", 99.5))
    after = rows_of(airqino_simulator)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(before) == len(after) and len(changed) == 1
    old, new = changed[0]
    assert new["PM2.5"] == 99.5 and old["PM2.5"] != 99.5
    assert new["timestamp"] <= (SIMULATOR_NOW - timedelta(hours=240)).strftime("%Y-%m-%d %H:00:00")


def test_negative_values_are_later_rewritten_to_zero(airqino_simulator: AirQinoSimulator) -> None:
    airqino_simulator.revise_history(
        SMART189, f.negative_value(48, "CO", -0.31), f.negative_value(50, "O3", -4.0)
    )
    first = rows_of(airqino_simulator, SMART189)
    assert sorted(v for row in first for v in row.values() if isinstance(v, float) and v < 0) == [-4.0, -0.31]
    airqino_simulator.revise_history(SMART189, f.clip_negatives())
    second = rows_of(airqino_simulator, SMART189)
    revised = [(a, b) for a, b in zip(first, second, strict=True) if a != b]
    assert [(a["CO"], b["CO"]) for a, b in revised if a["CO"] < 0] == [(-0.31, 0.0)]
    assert [(a["O3"], b["O3"]) for a, b in revised if a["O3"] < 0] == [(-4.0, 0.0)]


def test_row_corruption_helpers(airqino_simulator: AirQinoSimulator) -> None:
    clean = rows_of(airqino_simulator)
    corruptions = f.rows_fault(
        f.non_numeric_value(5, "PM2.5", "n/a"), f.duplicate_row(7, "PM2.5", 7.5), f.future_row(3)
    )
    airqino_simulator.set_fault(SMART188, corruptions)
    rows = rows_of(airqino_simulator)
    assert [row["PM2.5"] for row in rows if isinstance(row["PM2.5"], str)] == ["n/a"]
    stamps = [row["timestamp"] for row in rows]
    duplicated = [t for t, n in Counter(stamps).items() if n == 2]
    assert len(duplicated) == 1
    twins = [row for row in rows if row["timestamp"] == duplicated[0]]
    assert round(twins[1]["PM2.5"] - twins[0]["PM2.5"], 4) == 7.5
    assert rows[-1]["timestamp"] == "2024-09-09 13:00:00"
    assert len(rows) == len(clean) + 2
    assert rows_of(airqino_simulator) == clean  # a one-shot fault: the next response is clean


# -- auth --------------------------------------------------------------------------------------------------


def test_bearer_auth_and_keycloak_password_grant(airqino_simulator_factory: Factory) -> None:
    settings = AuthSettings(users={"alice": "s3cret"}, client_id="airqino-client", token_ttl_s=300)
    sim = airqino_simulator_factory(auth=settings)
    missing = fetch(sim)
    assert (missing.status_code, missing.content) == (401, b"{}")
    assert fetch(sim, headers={"Authorization": "Bearer sim-static-token"}).status_code == 200

    form = {"grant_type": "password", "client_id": "airqino-client", "username": "alice", "password": "nope"}
    assert requests.post(sim.token_url, data=form, timeout=5).json()["error"] == "invalid_grant"
    granted = requests.post(sim.token_url, data={**form, "password": "s3cret"}, timeout=5)
    assert granted.status_code == 200 and granted.json()["expires_in"] == 300
    bearer = {"Authorization": f"Bearer {granted.json()['access_token']}"}
    assert fetch(sim, headers=bearer).status_code == 200

    sim.advance(minutes=6)  # the access token expired on the simulated clock
    assert fetch(sim, headers=bearer).status_code == 401
    refresh = {"grant_type": "refresh_token", "client_id": "airqino-client"}
    refresh["refresh_token"] = granted.json()["refresh_token"]
    refreshed = requests.post(sim.token_url, data=refresh, timeout=5)
    assert refreshed.status_code == 200
    assert (
        fetch(sim, headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}).status_code == 200
    )
    assert sim.token_request_count() == 3
    assert sim.request_count(SMART188) == 5


# -- replay of recorded responses --------------------------------------------------------------------------


@pytest.mark.shared_data
def test_replay_of_the_recorded_year(
    shared_data_dir: Path, airqino_recorded_simulator: AirQinoSimulator
) -> None:
    recorded = json.loads((shared_data_dir / "v3_full_response_2024-09-09" / f"{SMART188}.json").read_text())
    payload = fetch(airqino_recorded_simulator).json()
    assert payload["header"] == recorded["header"]
    assert payload["data"][:-1] == recorded["data"][:-1]
    assert payload["data"][-1]["timestamp"] == recorded["data"][-1]["timestamp"]

    airqino_recorded_simulator.set_now(datetime(2024, 3, 1, 12, 15, tzinfo=timezone.utc))
    earlier = fetch(airqino_recorded_simulator).json()["data"]
    expected = [row for row in recorded["data"] if row["timestamp"] < "2024-03-01 12:00:00"]
    assert earlier[:-1] == expected
    assert earlier[-1]["timestamp"] == "2024-03-01 12:00:00"


@pytest.mark.shared_data
def test_replay_of_data_only_arrays_with_a_name_map(
    shared_data_dir: Path, airqino_simulator_factory: Factory
) -> None:
    folder = shared_data_dir / "v3_data_only_2023-12-10"
    names = {"station1_data": SMART188, "station2_data": SMART189}
    sim = airqino_simulator_factory(from_dir=folder, names=names, now=datetime(2023, 12, 9, 23, 40))
    recorded = json.loads((folder / "station2_data.json").read_text())
    payload = fetch(sim, SMART189).json()
    assert payload["header"]["station_name"] == "SMART189"
    assert payload["data"][:-1] == recorded[:-2]  # the recording's last hour (00:00) is after "now"
    assert min(row["CO"] for row in payload["data"]) < 0  # the negative-CO era is served as recorded


@pytest.mark.shared_data
def test_generated_schema_equals_the_recorded_schema(
    shared_data_dir: Path, airqino_simulator: AirQinoSimulator
) -> None:
    def schema(payload: dict[str, Any]) -> tuple:
        rows = payload["data"]
        key_sets = {frozenset(row) for row in rows}
        types = {(k, type(v).__name__) for row in rows for k, v in row.items()}
        header = {(k, type(v).__name__) for k, v in payload["header"].items()}
        return tuple(payload), header, key_sets, types, all(TIMESTAMP.fullmatch(r["timestamp"]) for r in rows)

    for station_id in (SMART188, SMART189):
        recorded = json.loads(
            (shared_data_dir / "v3_full_response_2024-09-09" / f"{station_id}.json").read_text()
        )
        assert schema(fetch(airqino_simulator, station_id).json()) == schema(recorded)


# -- CLI ---------------------------------------------------------------------------------------------------


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    assert "Example: elt simulate --port 8765" in result.output


def test_cli_serves_then_stops_after_duration() -> None:
    result = CliRunner().invoke(
        simulate,
        ["--port", "0", "--stations", "3", "--seed", "5", "--now", "2024-09-09T10:30Z", "--duration", "0.2"],
    )
    assert result.exit_code == 0, result.output
    assert re.search(
        r"AirQino simulator at http://127\.0\.0\.1:\d+ \(clock 2024-09-09T10:30\+00:00\)", result.output
    )
    assert "283164601  SMART188" in result.output and "283200002  SMART202" in result.output
    assert result.output.rstrip().endswith("simulator stopped")


def test_cli_rejects_a_bad_now() -> None:
    result = CliRunner().invoke(simulate, ["--port", "0", "--now", "yesterday", "--duration", "0"])
    assert result.exit_code == 2
    assert "is not an ISO time" in result.output


@pytest.mark.shared_data
def test_cli_replays_data_only_recordings(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "v3_data_only_2023-12-10"
    args = ["--port", "0", "--from-dir", str(folder), "--map", "station1_data=283164601", "--duration", "0"]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert "(clock 2023-12-10T00:30+00:00)" in result.output
    assert "283164601  SMART188" in result.output and "station2_data  station2_data" in result.output


def test_running_clock_ticks_and_can_be_frozen() -> None:
    clock = SimClock(SIMULATOR_NOW, running=True)
    time.sleep(0.05)
    assert clock() > SIMULATOR_NOW
    clock.set_running(False)
    frozen = clock()
    time.sleep(0.02)
    assert clock() == frozen and not clock.running
    assert clock.advance(hours=1) == frozen + timedelta(hours=1)
