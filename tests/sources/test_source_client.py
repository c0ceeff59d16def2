"""The AirQino HTTP client against a tiny scripted HTTP server: retries, backoff, auth, bad bodies."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from elt.config import AuthConfig, SourceConfig
from elt.errors import ConfigError, SourceError
from elt.sources.airqino import AirqinoClient, AirqinoSource, ClientSettings, FetchError

GOOD = {"header": {"station_name": "S"}, "data": [{"timestamp": "2024-09-09 09:00:00", "CO": 0.1}]}


class Scripted:
    """A local HTTP server answering from a queue of (status, headers, body, delay) steps; records requests."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, str], bytes, float]] = []
        self.requests: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, str]] = []
        self.valid_tokens: set[str] = set()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # the OAuth2 token endpoint
                length = int(self.headers.get("Content-Length", 0))
                form = dict(p.split("=", 1) for p in self.rfile.read(length).decode().split("&"))
                scripted.token_requests.append(form)
                if form.get("password") != "s3cret":
                    self._send(
                        401, {}, json.dumps({"error": "invalid_grant", "error_description": "bad"}).encode()
                    )
                    return
                token = f"tok{len(scripted.token_requests)}"
                scripted.valid_tokens.add(token)
                self._send(200, {}, json.dumps({"access_token": token, "expires_in": 300}).encode())

            def do_GET(self) -> None:
                scripted.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
                status, headers, body, delay = scripted.steps.pop(0) if scripted.steps else (200, {}, b"", 0)
                if delay:
                    time.sleep(delay)
                if status == 0:  # "expect a token": 401 unless the bearer token is valid
                    auth = self.headers.get("Authorization", "")
                    ok = auth.removeprefix("Bearer ") in scripted.valid_tokens
                    status, body = (200, json.dumps(GOOD).encode()) if ok else (401, b"{}")
                self._send(status, headers, body)

            def date_time_string(self, timestamp: float | None = None) -> str:
                return self.forced_date or super().date_time_string(timestamp)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                headers = {"Content-Type": "application/json", **headers}
                self.forced_date = headers.pop("Date", None)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def then(self, status: int, body: Any = GOOD, delay: float = 0.0, **headers: str) -> Scripted:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.steps.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, raw, delay))
        return self


@pytest.fixture
def api() -> Iterator[Scripted]:
    scripted = Scripted()
    thread = threading.Thread(target=scripted.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield scripted
    scripted.server.shutdown()
    scripted.server.server_close()


def make_client(api: Scripted, waits: list[float] | None = None, **overrides: Any) -> AirqinoClient:
    settings = ClientSettings(
        base_url=api.base_url, timeout_s=2.0, retries=3, backoff_base_s=0.01, backoff_max_s=5
    )
    for key, value in overrides.items():
        setattr(settings, key, value)
    sleeps = waits if waits is not None else []
    return AirqinoClient(settings, sleep=sleeps.append)


def test_success_returns_payload_size_and_server_time(api: Scripted) -> None:
    api.then(200, GOOD, Date="Mon, 09 Sep 2024 10:20:00 GMT")
    fetched = make_client(api).fetch_station("283164601")
    assert fetched.payload == GOOD
    assert (fetched.http_status, fetched.attempts) == (200, 1)
    assert fetched.bytes == len(json.dumps(GOOD))
    assert fetched.fetched_at == datetime(2024, 9, 9, 10, 20, tzinfo=timezone.utc)
    assert fetched.url == f"{api.base_url}/v3/getStationHourlyAvg/283164601"
    assert api.requests[0]["path"] == "/v3/getStationHourlyAvg/283164601"


def test_two_server_errors_then_success_retries_with_growing_backoff(api: Scripted) -> None:
    api.then(500, {}).then(502, {}).then(200)
    waits: list[float] = []
    fetched = make_client(api, waits).fetch_station("1")
    assert fetched.attempts == 3
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02


def test_429_honours_retry_after(api: Scripted) -> None:
    api.then(429, {}, Retry_After="3").then(200)
    waits: list[float] = []
    assert make_client(api, waits).fetch_station("1").attempts == 2
    assert waits == [3.0]


def test_retry_after_is_capped_by_backoff_max(api: Scripted) -> None:
    api.then(429, {}, Retry_After="9999").then(200)
    waits: list[float] = []
    make_client(api, waits, backoff_max_s=7.0).fetch_station("1")
    assert waits == [7.0]


def test_persistent_5xx_fails_after_retries_naming_the_settings(api: Scripted) -> None:
    for _ in range(4):
        api.then(503, {})
    with pytest.raises(FetchError) as caught:
        make_client(api).fetch_station("1")
    assert caught.value.http_status == 503
    assert caught.value.attempts == 4
    assert "HTTP 503 after 4 attempts" in str(caught.value)
    assert "source.retries=3" in str(caught.value)


def test_timeout_is_retried_then_reported(api: Scripted) -> None:
    api.then(200, delay=0.6).then(200, delay=0.6)
    with pytest.raises(FetchError) as caught:
        make_client(api, timeout_s=0.2, retries=1).fetch_station("1")
    assert "ReadTimeout" in str(caught.value)
    assert caught.value.attempts == 2


def test_truncated_body_with_full_content_length_is_a_connection_error_and_retried(api: Scripted) -> None:
    api.then(200, b'{"data": [{"timest', Content_Length="5000").then(200)
    waits: list[float] = []
    assert make_client(api, waits).fetch_station("1").attempts == 2


def test_truncated_json_is_reported_not_retried(api: Scripted) -> None:
    api.then(200, b'{"data": [{"timestamp": "2024-09-09 09:00:00", "CO"')
    with pytest.raises(FetchError) as caught:
        make_client(api).fetch_station("1")
    assert "not valid JSON" in str(caught.value) and "truncated" in str(caught.value)
    assert caught.value.bytes == 51 and len(api.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"timestamp": "2024-09-09 09:00:00", "CO": 0.1, "CO": 1e400, "PM2.5": NaN, "T": -0.0}]}',
        b'{"data": [{"timestamp": "2024-09-09 09:00:00", "note": "\\ud800", "n": 123456789012345678901234567890}]}',
        '{"data": [{"timestamp": "2024-09-09 09:00:00", "RH": 0.30000000000000004}]}'.encode("utf-16"),
    ],
)
def test_a_body_decodes_exactly_as_json_loads_would(api: Scripted, body: bytes) -> None:
    """The fast parser and json agree (duplicate keys, huge and special numbers); what it refuses (a lone
    surrogate escape, UTF-16) goes to json."""
    api.then(200, body)
    assert repr(make_client(api).fetch_station("1").payload) == repr(
        json.loads(body)
    )  # NaN, -0.0, int vs float


def test_html_error_page_is_named(api: Scripted) -> None:
    api.then(200, b"<html><head><title>502 Bad Gateway</title></head></html>", Content_Type="text/html")
    with pytest.raises(FetchError, match="HTML page \\(title: '502 Bad Gateway'\\)"):
        make_client(api).fetch_station("1")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_names_the_variables_and_hides_the_token(api: Scripted, status: int) -> None:
    api.then(status, {})
    with pytest.raises(FetchError) as caught:
        make_client(api, auth_mode="bearer", token="SUPERSECRET").fetch_station("1")
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert "AIRQINO_TOKEN" in message and "AIRQINO_USERNAME" in message and "AIRQINO_PASSWORD" in message
    assert "SUPERSECRET" not in message + caught.value.url
    assert api.requests[0]["auth"] == "Bearer SUPERSECRET"


def test_password_grant_fetches_token_once_and_refreshes_after_401(api: Scripted) -> None:
    api.then(0).then(0)
    client = make_client(
        api, auth_mode="password", username="u", password="s3cret", token_url=api.base_url + "/t"
    )
    client.fetch_station("1")
    client.fetch_station("2")
    assert len(api.token_requests) == 1
    assert api.token_requests[0]["grant_type"] == "password"
    api.valid_tokens.clear()  # the server revokes the token: the next call gets 401, refreshes, succeeds
    api.then(0).then(0)
    assert client.fetch_station("3").payload == GOOD
    assert len(api.token_requests) == 2


def test_password_grant_refused_says_which_variables(api: Scripted) -> None:
    client = make_client(
        api, auth_mode="password", username="u", password="wrong", token_url=api.base_url + "/t"
    )
    with pytest.raises(SourceError) as caught:
        client.fetch_station("1")
    assert "invalid_grant" in str(caught.value) and "AIRQINO_PASSWORD" in str(caught.value)
    assert "wrong" not in str(caught.value)


def test_date_range_parameters_only_behind_the_switch(api: Scripted) -> None:
    since, until = datetime(2024, 9, 1, tzinfo=timezone.utc), datetime(2024, 9, 2, 6, tzinfo=timezone.utc)
    api.then(200).then(200)
    make_client(api).fetch_station("1", since, until)
    make_client(api, send_date_range=True).fetch_station("1", since, until)
    assert api.requests[0]["path"] == "/v3/getStationHourlyAvg/1"
    assert (
        api.requests[1]["path"] == "/v3/getStationHourlyAvg/1?start_date=20240901-0000&end_date=20240902-0600"
    )


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    client = AirqinoClient(ClientSettings(base_url="http://x", backoff_base_s=2.0, backoff_max_s=300))
    for attempt, step in [(1, 2.0), (2, 4.0), (5, 32.0), (20, 300.0)]:
        waits = [client.backoff(attempt) for _ in range(50)]
        assert all(step / 2 <= w <= step for w in waits)
        assert len(set(waits)) > 1


def test_settings_from_config_require_the_secrets_of_the_auth_mode() -> None:
    with pytest.raises(ConfigError, match="AIRQINO_TOKEN"):
        ClientSettings.from_config(SourceConfig(auth=AuthConfig(mode="bearer")))
    with pytest.raises(ConfigError, match="AIRQINO_USERNAME and AIRQINO_PASSWORD"):
        ClientSettings.from_config(SourceConfig(auth=AuthConfig(mode="password", username="u")))
    settings = ClientSettings.from_config(SourceConfig(base_url="http://h/", timeout_s=9, backoff_base_s=0.5))
    assert (settings.base_url, settings.timeout_s, settings.backoff_base_s) == ("http://h", 9, 0.5)
    assert "token=" not in repr(
        ClientSettings.from_config(SourceConfig(auth=AuthConfig(mode="bearer", token="x")))
    )


def test_data_rows_accepts_full_response_or_bare_array_and_refuses_empty() -> None:
    assert AirqinoSource.data_rows(GOOD, "u") == GOOD["data"]
    assert AirqinoSource.data_rows(GOOD["data"], "u") == GOOD["data"]
    with pytest.raises(SourceError, match="empty 'data'"):
        AirqinoSource.data_rows({"header": {}, "data": []}, "u")
    with pytest.raises(SourceError, match="expected an object with a 'data' array, got object with keys"):
        AirqinoSource.data_rows({"error": "x"}, "u")
