"""The AirQino source: what it is (a small declarative class) and how to fetch it (an HTTP client).

The client fetches ``GET /v3/getStationHourlyAvg/{station_id}`` with auth none / bearer (``AIRQINO_TOKEN``) /
OAuth2 password grant (``AIRQINO_USERNAME`` + ``AIRQINO_PASSWORD``; token fetched once, refreshed on expiry or
on a 401), a timeout, and retries with exponential backoff plus jitter on timeouts, connection errors, 429
and 5xx (honouring ``Retry-After``). Secrets travel only in headers or the token POST body: URLs are safe
to log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import pydantic_core
import requests
from tenacity import RetryCallState

from elt import owned
from elt.config import SourceConfig
from elt.errors import ConfigError, SourceError
from elt.logs import redact
from elt.retry import BackoffWait, Transient, backoff_seconds, parse_retry_after, retrying
from elt.sources.base import FetchedResponse, FetchError
from elt.utc import as_utc

log = logging.getLogger(__name__)

AUTH_HINT = (
    "The AirQino API needs credentials: set AIRQINO_TOKEN (with source.auth.mode: bearer) or "
    "AIRQINO_USERNAME and AIRQINO_PASSWORD (with source.auth.mode: password) in the environment."
)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class AirqinoSource:
    """The AirQino hourly-average stream, declared as data (a second source is a new class like this)."""

    name: ClassVar[str] = "airqino"
    #: Path of one station's rolling 365-day window of hourly averages.
    endpoint: ClassVar[str] = "/v3/getStationHourlyAvg/{station_id}"
    #: Fields that identify one landed row.
    primary_key: ClassVar[tuple[str, ...]] = ("station_id", "ts")
    #: Field that orders rows in time.
    replication_key: ClassVar[str] = "ts"
    #: Format of the optional ``start_date``/``end_date`` query parameters (unconfirmed API feature).
    date_param_format: ClassVar[str] = "%Y%m%d-%H%M"
    #: Collections the loader writes.
    raw_collection: ClassVar[str] = owned.RAW_HOURLY_COLLECTION
    history_collection: ClassVar[str] = owned.RAW_HISTORY_COLLECTION
    rejects_collection: ClassVar[str] = owned.RAW_REJECTS_COLLECTION
    batches_collection: ClassVar[str] = owned.LOAD_BATCHES_COLLECTION

    @classmethod
    def path(cls, station_id: str) -> str:
        """URL path of a station's data."""
        return cls.endpoint.format(station_id=station_id)

    @classmethod
    def date_params(cls, since: datetime | None, until: datetime | None) -> dict[str, str]:
        """The ``start_date``/``end_date`` query parameters for a window (empty when unbounded)."""
        params = {}
        if since is not None:
            params["start_date"] = as_utc(since).strftime(cls.date_param_format)
        if until is not None:
            params["end_date"] = as_utc(until).strftime(cls.date_param_format)
        return params

    @staticmethod
    def data_rows(payload: Any, where: str) -> list[Any]:
        """The ``data`` array of a response (a bare array is accepted too), or a SourceError saying why."""
        if isinstance(payload, list):
            data = payload
        elif isinstance(payload, dict) and isinstance(payload.get("data"), list):
            data = payload["data"]
        else:
            shape = (
                f"object with keys {sorted(payload)[:8]}"
                if isinstance(payload, dict)
                else type(payload).__name__
            )
            raise SourceError(
                f"{where}: unexpected JSON: expected an object with a 'data' array, got {shape}"
            )
        if not data:
            raise SourceError(f"{where}: the response has no rows (empty 'data'); nothing to load")
        return data


@dataclass
class ClientSettings:
    """How the client talks to the API (built from ``SourceConfig``; tests set small waits)."""

    base_url: str
    auth_mode: str = "none"
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token_url: str = ""
    client_id: str = "airqino"
    timeout_s: float = 120.0
    retries: int = 5
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0
    send_date_range: bool = False

    @classmethod
    def from_config(cls, source: SourceConfig) -> ClientSettings:
        """Settings from the project's ``source:`` block; ConfigError when the auth mode lacks its secrets."""
        auth = source.auth
        settings = cls(
            base_url=source.base_url.rstrip("/"),
            auth_mode=auth.mode,
            token=auth.token.get_secret_value() if auth.token else None,
            password=auth.password.get_secret_value() if auth.password else None,
            **auth.model_dump(include={"username", "token_url", "client_id"}),
            **source.model_dump(
                include={"timeout_s", "retries", "backoff_base_s", "backoff_max_s", "send_date_range"}
            ),
        )
        if settings.auth_mode == "bearer" and not settings.token:
            raise ConfigError(
                "source.auth.mode is 'bearer' but AIRQINO_TOKEN (or AIRQINO_TOKEN_FILE) is not set"
            )
        if settings.auth_mode == "password" and not (settings.username and settings.password):
            raise ConfigError(
                "source.auth.mode is 'password' but AIRQINO_USERNAME and AIRQINO_PASSWORD "
                "(or their *_FILE variants) are not both set"
            )
        return settings


class AirqinoClient:
    """Thread-safe HTTP client for the AirQino API (one ``requests.Session`` per thread, one shared token).

    A ``elt.sources.base.StationSource``: ``location`` and ``fetch`` are what ``elt load`` uses.
    """

    mode: ClassVar[str] = "api"

    def __init__(
        self,
        settings: ClientSettings,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.settings = settings
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._local = threading.local()
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        self._token_expires = 0.0

    # --- public ---------------------------------------------------------------------------------------------

    def location(self, station_id: str) -> str:
        """The data URL of a station, safe to log (credentials never travel in URLs)."""
        return redact(self.settings.base_url + AirqinoSource.path(station_id))

    def fetch(
        self, station_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> FetchedResponse:
        """One station's response (the date range is sent only with ``source.send_date_range``)."""
        return self.fetch_station(station_id, since, until)

    def fetch_station(
        self, station_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> FetchedResponse:
        """GET one station's hourly averages, retrying transient failures; FetchError when it cannot."""
        url = self.settings.base_url + AirqinoSource.path(station_id)
        params = AirqinoSource.date_params(since, until) if self.settings.send_date_range else {}
        shown = redact(requests.Request("GET", url, params=params).prepare().url or url)
        wait = BackoffWait(self.settings.backoff_base_s, self.settings.backoff_max_s, self._rng)

        def log_retry(state: RetryCallState) -> None:
            failure, pause = state.outcome.exception() if state.outcome else None, state.upcoming_sleep
            log.warning("station %s: %s; retry %d/%d in %.1f s", station_id, failure, state.attempt_number,
                        self.settings.retries, pause)  # fmt: skip

        policy = retrying(self.settings.retries + 1, wait, self._sleep, log_retry)
        try:
            for attempt in policy:
                with attempt:
                    return self._fetch_once(
                        station_id, url, params, shown, attempt.retry_state.attempt_number
                    )
        except Transient as failure:
            attempts = policy.statistics.get("attempt_number", self.settings.retries + 1)
            raise FetchError(
                f"{shown}: {failure} after {attempts} attempts; the API may be down or slow "
                f"(source.timeout_s={self.settings.timeout_s:g}, source.retries={self.settings.retries})",
                shown,
                failure.http_status,
                0,
                attempts,
            ) from None
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    def _fetch_once(
        self, station_id: str, url: str, params: dict[str, str], shown: str, attempt: int
    ) -> FetchedResponse:
        """One GET (plus one token refresh on a 401 in password mode); ``Transient`` when worth retrying."""
        for refresh_allowed in (True, False):
            try:
                response = self._session().get(
                    url, params=params, headers=self._auth_headers(), timeout=self.settings.timeout_s
                )
                body = response.content
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise Transient(f"{type(exc).__name__}: {_short(exc)}") from None
            status = response.status_code
            if status not in (401, 403):
                break
            if not (refresh_allowed and self.settings.auth_mode == "password"):
                raise FetchError(f"{shown}: HTTP {status}. {AUTH_HINT}", shown, status, len(body), attempt)
            self._invalidate_token()
        if status == 429 or status >= 500:
            raise Transient(
                f"HTTP {status}{_html_hint(body)}",
                status,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise FetchError(f"{shown}: HTTP {status}: {_snippet(body)}", shown, status, len(body), attempt)
        payload = _decode_json(body, response.headers.get("Content-Type", ""), shown, status, attempt)
        return FetchedResponse(
            station_id=station_id,
            url=shown,
            http_status=status,
            bytes=len(body),
            payload=payload,
            fetched_at=_server_time(response.headers.get("Date")),
            attempts=attempt,
        )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry ``attempt`` (1-based): Retry-After if given, else exponential + jitter (equal
        jitter: half the step fixed, half random), both capped at ``backoff_max_s`` (see ``elt.retry``)."""
        return backoff_seconds(
            attempt, self.settings.backoff_base_s, self.settings.backoff_max_s, retry_after, self._rng
        )

    # --- auth -----------------------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "airqino-elt"}
        if self.settings.auth_mode == "bearer" and self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        elif self.settings.auth_mode == "password":
            headers["Authorization"] = f"Bearer {self._password_grant_token()}"
        return headers

    def _invalidate_token(self) -> None:
        with self._token_lock:
            self._access_token = None

    def _password_grant_token(self) -> str:
        with self._token_lock:
            if self._access_token and time.monotonic() < self._token_expires:
                return self._access_token
            s = self.settings
            form = {
                "grant_type": "password",
                "client_id": s.client_id,
                "username": s.username,
                "password": s.password,
            }
            try:
                response = self._session().post(s.token_url, data=form, timeout=s.timeout_s)
            except requests.RequestException as exc:
                raise SourceError(
                    f"token endpoint {redact(s.token_url)} unreachable: {_short(exc)}"
                ) from None
            if response.status_code != 200:
                raise SourceError(
                    f"token endpoint {redact(s.token_url)} refused the password grant: "
                    f"HTTP {response.status_code} "
                    f"{_oauth_error(response)}. Check AIRQINO_USERNAME and AIRQINO_PASSWORD "
                    "(and source.auth.client_id)."
                )
            try:
                grant = response.json()
                token = str(grant["access_token"])
            except (ValueError, KeyError, TypeError):
                raise SourceError(f"token endpoint {redact(s.token_url)} returned no access_token") from None
            expires_in = float(grant.get("expires_in") or 300)
            self._access_token = token
            self._token_expires = time.monotonic() + max(expires_in - 30, expires_in / 2)
            return token

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def _decode_json(body: bytes, content_type: str, shown: str, status: int, attempt: int) -> Any:
    head = body[:200].lstrip().lower()
    if "html" in content_type.lower() or head.startswith((b"<!doctype", b"<html", b"<")):
        title = _TITLE.search(body[:4000])
        label = f" (title: {title.group(1).decode(errors='replace').strip()[:80]!r})" if title else ""
        raise FetchError(
            f"{shown}: HTTP {status} returned an HTML page{label}, not JSON (an error, proxy or login page)",
            shown,
            status,
            len(body),
            attempt,
        )
    with contextlib.suppress(ValueError):  # the Rust parser pydantic brings: twice json's speed, same values
        return pydantic_core.from_json(body)
    try:  # what it refuses (a lone surrogate escape, UTF-16) or malformed JSON, with json's own message
        return json.loads(body)
    except ValueError as exc:
        raise FetchError(
            f"{shown}: HTTP {status} body is not valid JSON ({exc}; {len(body)} bytes): truncated or corrupt",
            shown,
            status,
            len(body),
            attempt,
        ) from None


def _html_hint(body: bytes) -> str:
    """`` (HTML page 'title')`` when an error body is an HTML page, else empty."""
    title = _TITLE.search(body[:4000])
    return f" (HTML page {title.group(1).decode(errors='replace').strip()[:80]!r})" if title else ""


def _server_time(value: str | None) -> datetime:
    """The response's ``Date`` header as aware UTC, or now when it is absent or unreadable."""
    if value:
        try:
            return as_utc(parsedate_to_datetime(value))
        except (TypeError, ValueError):
            log.debug("unreadable Date header %r; using the local clock", value)
    return datetime.now(timezone.utc)


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
        return f"({body.get('error', '?')}: {body.get('error_description', '')})"
    except ValueError:
        return ""


def _snippet(body: bytes) -> str:
    return redact(body[:200].decode(errors="replace").strip()) or "(empty body)"


def _short(exc: Exception) -> str:
    return redact(str(exc))[:300]
