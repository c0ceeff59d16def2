"""The alert hook: a JSON POST to the webhook in ``ELT_ALERT_WEBHOOK_URL`` on a failed run and on stale stations.

The payload has a ``text`` line (what Slack, Mattermost and Teams incoming webhooks display) plus structured
fields; every string in it is redacted and it never carries a URI, token or password. The webhook URL itself is
a secret (chat webhooks embed a token): it is never logged, only its host. Delivery is retried with exponential
backoff on connection errors, 429 and 5xx (honouring ``Retry-After``). Stale-station alerts are sent when a station becomes stale and then
at most every ``ELT_ALERT_REPEAT_HOURS`` (24) while it stays stale; the state lives in ``elt_alerts``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.errors import ConfigError
from elt.logs import redact
from elt.owned import ALERTS_COLLECTION
from elt.retry import BackoffWait, Transient, parse_retry_after, retrying
from elt.settings import settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: The longest wait between two deliveries (caps a receiver's ``Retry-After``).
RETRY_AFTER_MAX_S = 60.0


@dataclass
class AlertDelivery:
    """What happened to one alert."""

    event: str
    sent: bool
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (no URL: it is a secret)."""
        return {"event": self.event, "sent": self.sent, "attempts": self.attempts,
                "http_status": self.http_status, "error": self.error}  # fmt: skip


def webhook_url() -> str | None:
    """The webhook from the environment (``ELT_ALERT_WEBHOOK_URL``, or a file named by ``..._FILE``)."""
    try:
        url = settings().alert_webhook_url
    except ConfigError as exc:
        log.error("%s; alerts are off", exc)
        return None
    return url.get_secret_value().strip() if url else None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def send_alert(
    payload: dict[str, Any],
    url: str | None = None,
    attempts: int = 4,
    timeout_s: float = 10.0,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> AlertDelivery:
    """POST ``payload`` (scrubbed) to the webhook; retries 429/5xx/connection errors with backoff 1, 2, 4 s
    (or the receiver's ``Retry-After``, at most ``RETRY_AFTER_MAX_S``)."""
    event = str(payload.get("event", "alert"))
    url = url or webhook_url()
    if not url:
        return AlertDelivery(
            event, sent=False, error="no webhook configured (ELT_ALERT_WEBHOOK_URL is unset)"
        )
    host = urlsplit(url).hostname or "?"
    body = _scrub(payload)
    delivery = AlertDelivery(event, sent=False)

    def post() -> None:
        delivery.attempts += 1
        try:
            response = requests.post(url, json=body, timeout=timeout_s)
        except requests.RequestException as exc:
            delivery.error = type(exc).__name__
            raise Transient(delivery.error) from None
        delivery.http_status = response.status_code
        if response.status_code < 300:
            delivery.sent, delivery.error = True, None
            return
        delivery.error = f"HTTP {response.status_code}"
        if response.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise Transient(delivery.error, response.status_code, retry_after)

    with contextlib.suppress(Transient):
        retrying(attempts, BackoffWait(backoff_s, RETRY_AFTER_MAX_S), sleep)(post)
    if delivery.sent:
        log.info("alert %s delivered to %s (attempt %d)", event, host, delivery.attempts)
    else:
        log.error("alert %s could not be delivered to %s after %d attempt(s): %s", event, host,
                  delivery.attempts, delivery.error)  # fmt: skip
    return delivery


def _payload(event: str, project_name: str, database: str, text: str, **fields: Any) -> dict[str, Any]:
    """An alert: ``event``, a ``text`` line chat webhooks display, the project and database, ``fields``, ``at``."""
    return {"event": event, "text": f"[airqino-elt] {project_name}: {text}", "project": project_name,
            "database": database, **fields, "at": datetime.now(timezone.utc)}  # fmt: skip


def run_failed_payload(project_name: str, database: str, run: dict[str, Any]) -> dict[str, Any]:
    """The payload for a failed run: which steps failed and why (redacted)."""
    failed = [s for s in run.get("steps", []) if s.get("status") == "failed"]
    names = ", ".join(s["name"] for s in failed) or "run"
    return _payload(
        "run_failed", project_name, database, f"run {run.get('_id')} failed in {names}: {run.get('error') or ''}",
        run_id=run.get("_id"), window=run.get("window"), error=run.get("error"),
        failed_steps=[{"name": s["name"], "error": s.get("error")} for s in failed],
    )  # fmt: skip


def stale_payload(project_name: str, database: str, stations: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The payload for stations stale beyond their ``stale_after_hours``."""
    stations = list(stations)
    parts = [
        f"{s['name']} ({s['station_id']}): no data for {s['age_hours']:.0f} h" if s.get("age_hours") is not None
        else f"{s['name']} ({s['station_id']}): no data yet"
        for s in stations
    ]  # fmt: skip
    keys = ("station_id", "name", "last_ts", "age_hours", "stale_after_hours")
    return _payload(
        "stations_stale", project_name, database, f"{len(stations)} stale station(s): " + "; ".join(parts),
        stations=[{key: s.get(key) for key in keys} for s in stations],
    )  # fmt: skip


def _repeat_after() -> timedelta:
    return timedelta(hours=settings().alert_repeat_hours)


def _sent_recently(coll: Any, kind: str, field: str, current: set[str], now: datetime) -> set[str]:
    """The ``field`` values of ``kind`` alerts sent within the repeat interval. Values no longer current are
    forgotten first, so they alert at once when they come back. Unreadable state: alert anyway."""
    try:
        coll.delete_many({"kind": kind, field: {"$nin": sorted(current)}})
        return {d[field] for d in coll.find({"kind": kind, "last_sent_at": {"$gt": now - _repeat_after()}})}
    except PyMongoError as exc:
        log.warning("cannot read the alert state (%s); alerting anyway", redact(str(exc))[:200])
        return set()


def alert_stale_stations(
    db: Database, project_name: str, stale: list[dict[str, Any]], now: datetime | None = None
) -> AlertDelivery | None:
    """Alert about stations that became stale (or are still stale after the repeat interval); None if none due.

    A station that is fresh again is forgotten, so its next staleness alerts at once.
    """
    now = now or datetime.now(timezone.utc)
    coll = db[ALERTS_COLLECTION]
    stale_ids = {s["station_id"] for s in stale}
    sent_recently = _sent_recently(coll, "stale", "station_id", stale_ids, now)
    due = [s for s in stale if s["station_id"] not in sent_recently]
    if not due or not webhook_url():
        return None
    delivery = send_alert(stale_payload(project_name, db.name, due))
    if delivery.sent:
        for station in due:
            coll.update_one(
                {"_id": f"stale|{station['station_id']}"},
                {"$set": {"kind": "stale", "station_id": station["station_id"], "last_sent_at": now}},
                upsert=True,
            )
    return delivery


def missing_forecasts_payload(
    project_name: str, database: str, series: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """The payload for series that should be forecast and have had no forecast for too long."""
    series = list(series)
    parts = [
        f"{s['station_id']} {s['pollutant']}: none for {s['missing_hours']:.0f} h ({s['status']}: {s.get('reason')})"
        for s in series
    ]
    keys = ("station_id", "pollutant", "status", "reason",
            "missing_since", "missing_hours", "threshold_hours")  # fmt: skip
    return _payload(
        "forecasts_missing", project_name, database, f"{len(series)} series without forecasts: " + "; ".join(parts),
        series=[{key: s.get(key) for key in keys} for s in series],
    )  # fmt: skip


def alert_missing_forecasts(
    db: Database, project_name: str, missing: list[dict[str, Any]], now: datetime | None = None
) -> AlertDelivery | None:
    """Alert about series without forecasts for too long (once per repeat interval); None if none due.

    A series forecast again is forgotten, so the next time it goes missing alerts at once.
    """
    now = now or datetime.now(timezone.utc)
    coll = db[ALERTS_COLLECTION]
    keys = {f"{s['station_id']}|{s['pollutant']}" for s in missing}
    sent_recently = _sent_recently(coll, "forecast_missing", "series", keys, now)
    due = [s for s in missing if f"{s['station_id']}|{s['pollutant']}" not in sent_recently]
    if not due or not webhook_url():
        return None
    delivery = send_alert(missing_forecasts_payload(project_name, db.name, due))
    if delivery.sent:
        for series in due:
            key = f"{series['station_id']}|{series['pollutant']}"
            coll.update_one(
                {"_id": f"forecast_missing|{key}"},
                {"$set": {"kind": "forecast_missing", "series": key, "last_sent_at": now}},
                upsert=True,
            )
    return delivery
