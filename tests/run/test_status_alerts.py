"""``elt status`` freshness and stale stations, and the alert webhook reaching a local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from elt.config import load_project
from elt.errors import LoadError
from elt.run.alerts import ALERTS_COLLECTION, alert_stale_stations, send_alert
from elt.run.status import build_status
from elt.run.steps import StepOutcome
from elt.run.task import RunTask

NOW = datetime(2024, 9, 9, 10, 30, tzinfo=timezone.utc)
SMART188, SMART189 = "283164601", "283181971"


class Receiver:
    """A local webhook: records JSON bodies, answers with the queued statuses (then 200), an error with
    ``retry_after`` as its ``Retry-After`` header when set."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.retry_after: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.bodies.append(json.loads(body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status >= 300 and receiver.retry_after:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    rec = Receiver()
    rec.thread.start()
    monkeypatch.setenv("ELT_ALERT_WEBHOOK_URL", rec.url)
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def _raw(db: Database, station_id: str, ts: datetime, **measures: float) -> None:
    db.raw_airqino_hourly.insert_one({"_id": f"{station_id}|{ts:%Y-%m-%dT%H:00Z}", "station_id": station_id,
                                      "ts": ts, **measures})  # fmt: skip


def test_status_from_raw_flags_the_quiet_station_and_the_dead_sensor(
    project_dir: Path, mongo_db: Database
) -> None:
    _raw(mongo_db, SMART188, NOW - timedelta(hours=2), pm25=8.0)  # reports, but its CO never has a value
    _raw(mongo_db, SMART188, NOW - timedelta(hours=40), co=0.4, pm25=7.0)
    _raw(mongo_db, SMART189, NOW - timedelta(hours=30), co=0.5, pm25=12.0)
    report = build_status(load_project(project_dir), mongo_db, now=NOW)
    assert report.freshness_source == "raw_airqino_hourly"
    by_id = {s.station_id: s for s in report.stations}
    assert by_id[SMART188].stale is False and by_id[SMART188].age_hours == 2.0
    co, pm25 = by_id[SMART188].pollutants
    assert (co.pollutant, co.stale, co.age_hours) == ("co", True, 40.0)
    assert (pm25.stale, pm25.last_valid_ts) == (False, NOW - timedelta(hours=2))
    assert by_id[SMART189].stale is True and by_id[SMART189].age_hours == 30.0
    assert [s.station_id for s in report.stale_stations] == [SMART189]


def test_status_prefers_the_freshness_mart(project_dir: Path, mongo_db: Database) -> None:
    mongo_db.station_freshness.insert_many([
        {"station_id": SMART188, "pollutant": "co", "last_ts": NOW - timedelta(hours=1), "last_valid_ts": None},
        {"station_id": SMART188, "pollutant": "pm25", "last_ts": NOW - timedelta(hours=1),
         "last_valid_ts": NOW - timedelta(hours=1)},
    ])  # fmt: skip
    report = build_status(load_project(project_dir), mongo_db, now=NOW)
    assert report.freshness_source == "station_freshness"
    assert [s.station_id for s in report.stale_stations] == [SMART189]  # no row at all: never reported
    assert report.stations[0].pollutants[0].stale is True  # CO never valid


def test_status_json_shows_the_stale_station_and_the_alert_reaches_the_receiver(
    project_dir: Path, mongo_db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRQINO_PASSWORD", "s3cr3t-password")
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    config = yaml.safe_load((project_dir / "config" / "elt.yml").read_text())
    config["stations"][1]["stale_after_hours"] = 3
    (project_dir / "config" / "elt.yml").write_text(yaml.safe_dump(config))
    _raw(mongo_db, SMART188, now - timedelta(hours=1), co=0.3, pm25=9.0)
    _raw(mongo_db, SMART189, now - timedelta(hours=5), co=0.3, pm25=9.0)

    result = CliRunner().invoke(main, ["--project-dir", str(project_dir), "status", "--json", "--alert"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["stale_stations"] == [SMART189]
    stale = next(s for s in status["stations"] if s["station_id"] == SMART189)
    assert stale["stale"] is True and stale["stale_after_hours"] == 3 and stale["age_hours"] >= 5
    assert status["alert"]["sent"] is True

    assert len(receiver.bodies) == 1
    payload = receiver.bodies[0]
    assert payload["event"] == "stations_stale"
    assert [s["station_id"] for s in payload["stations"]] == [SMART189]
    assert "SMART189" in payload["text"]
    dumped = json.dumps(payload)
    for secret in ("s3cr3t-password", "secret-path", "mongodb://"):
        assert secret not in dumped

    again = CliRunner().invoke(main, ["--project-dir", str(project_dir), "status", "--json", "--alert"])
    assert json.loads(again.stdout)["alert"] is None and len(receiver.bodies) == 1  # not repeated within 24 h
    check = CliRunner().invoke(main, ["--project-dir", str(project_dir), "status", "--check"])
    assert check.exit_code == 1


def test_alert_delivery_retries_server_errors_with_backoff(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    waits: list[float] = []
    delivery = send_alert({"event": "test", "text": "hello"}, sleep=waits.append)
    assert delivery.sent and delivery.attempts == 3 and delivery.http_status == 200
    assert waits == [1.0, 2.0]
    receiver.statuses = [400]
    refused = send_alert({"event": "test"}, sleep=waits.append)
    assert not refused.sent and refused.attempts == 1 and refused.error == "HTTP 400"


def test_alert_delivery_waits_as_long_as_the_receiver_asks(receiver: Receiver) -> None:
    receiver.statuses, receiver.retry_after = [429, 503], "7"
    waits: list[float] = []
    delivery = send_alert({"event": "test"}, sleep=waits.append)
    assert delivery.sent and delivery.attempts == 3 and waits == [7.0, 7.0]
    receiver.statuses, receiver.retry_after = [429], "3600"
    send_alert({"event": "test"}, sleep=waits.append)
    assert waits[-1] == 60.0  # capped (RETRY_AFTER_MAX_S)


def test_unreachable_webhook_fails_softly_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    delivery = send_alert({"event": "x"}, url="http://127.0.0.1:9/nothing", attempts=2, sleep=lambda s: None)
    assert not delivery.sent and delivery.attempts == 2 and delivery.error == "ConnectionError"
    monkeypatch.delenv("ELT_ALERT_WEBHOOK_URL", raising=False)
    assert send_alert({"event": "x"}).error.startswith("no webhook configured")


def test_stale_alert_state_resets_when_the_station_recovers(mongo_db: Database, receiver: Receiver) -> None:
    station = {"station_id": SMART189, "name": "SMART189", "last_ts": None, "age_hours": None,
               "stale_after_hours": 6}  # fmt: skip
    assert alert_stale_stations(mongo_db, "p", [station], NOW).sent
    assert alert_stale_stations(mongo_db, "p", [station], NOW + timedelta(hours=1)) is None
    assert alert_stale_stations(mongo_db, "p", [], NOW + timedelta(hours=2)) is None
    assert mongo_db[ALERTS_COLLECTION].count_documents({}) == 0
    assert alert_stale_stations(mongo_db, "p", [station], NOW + timedelta(hours=3)).sent
    assert alert_stale_stations(mongo_db, "p", [station], NOW + timedelta(hours=28)).sent  # repeat after 24 h
    assert len(receiver.bodies) == 3


def test_a_failed_run_calls_the_webhook_without_secrets(
    project_dir: Path, mongo_db: Database, receiver: Receiver
) -> None:
    def failing_load(ctx: object) -> StepOutcome:
        raise LoadError("GET https://bob:pa55word@airqino.example/v3 refused: token=abc123")

    steps = {name: (lambda ctx: StepOutcome()) for name in ("transform", "test", "forecast", "publish")}
    result = RunTask(
        load_project(project_dir), mongo_db, step_functions={"load": failing_load, **steps}
    ).run()
    assert result.exit_code == 1
    events = [b["event"] for b in receiver.bodies]
    assert events[0] == "run_failed"
    failed = receiver.bodies[0]
    assert failed["run_id"] == result.run_id and failed["failed_steps"][0]["name"] == "load"
    assert "pa55word" not in json.dumps(failed) and "abc123" not in json.dumps(failed)
    assert result.alerts[0]["sent"] is True
