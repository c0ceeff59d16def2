"""The local AirQino API: ``GET /v3/getStationHourlyAvg/{station_id}`` (+ a fake Keycloak token endpoint).

``AirQinoSimulator`` serves generated or recorded stations over HTTP from a background thread, with a settable
clock, optional bearer auth, per-station fault queues, lasting history revisions and request counting, all
safe to change from a test while the server runs.

Example::

    with AirQinoSimulator.generated(count=2, seed=7, now=datetime(2024, 9, 9, 10, 30)) as sim:
        requests.get(f"{sim.base_url}/v3/getStationHourlyAvg/283164601").json()
        sim.advance(hours=1)                       # one more final row
        sim.set_fault("283164601", http_error(500, times=2))
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

from elt.simulator.auth import TOKEN_PATH, AuthSettings, TokenIssuer
from elt.simulator.clock import SimClock
from elt.simulator.faults import Fault
from elt.simulator.generate import GeneratedStation, StationSpec, default_stations
from elt.simulator.handler import Reply, RequestRecord, SimulatorHTTPServer
from elt.simulator.recorded import load_recorded_dir
from elt.simulator.response import RowsTransform, StationData, station_body, window_for
from elt.simulator.timeutil import hour_start, parse_query_date

log = logging.getLogger(__name__)

#: The data endpoint, relative to the base URL.
DATA_PATH = "/v3/getStationHourlyAvg/{station_id}"


class AirQinoSimulator:
    """A local AirQino API serving ``stations`` as of the simulated clock (real time when no clock is given).

    ``window_days`` is the length of the rolling window; ``seed`` drives the provisional-hour drift; ``auth``
    requires bearer tokens; ``port=0`` picks a free port.
    """

    def __init__(
        self,
        stations: Iterable[StationData],
        *,
        clock: SimClock | None = None,
        window_days: int = 365,
        seed: int = 0,
        auth: AuthSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.stations: dict[str, StationData] = {s.station_id: s for s in stations}
        self.clock = clock or SimClock(running=True)
        self.window_days = window_days
        self.seed = seed
        self.auth = TokenIssuer(auth, self.clock) if auth is not None else None
        self._address = (host, port)
        self._faults: dict[str, deque[list[Any]]] = {}
        self._revisions: dict[str, list[RowsTransform]] = {}
        self._records: list[RequestRecord] = []
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        """Set while the server stops: delayed replies give up."""
        self._httpd: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def generated(
        cls,
        count: int = 2,
        seed: int = 0,
        specs: Iterable[StationSpec] | None = None,
        now: datetime | None = None,
        **kwargs: Any,
    ) -> AirQinoSimulator:
        """Synthetic stations (``specs``, default ``default_stations(count, seed)``), clock frozen at ``now``.

        Without ``now`` (and without a ``clock`` argument) the clock runs in real time.
        """
        specs = list(specs) if specs is not None else default_stations(count, seed)
        kwargs.setdefault("clock", SimClock(now) if now is not None else SimClock(running=True))
        return cls([GeneratedStation(spec, seed) for spec in specs], seed=seed, **kwargs)

    @classmethod
    def from_dir(
        cls,
        directory: Path,
        names: dict[str, str] | None = None,
        now: datetime | None = None,
        **kwargs: Any,
    ) -> AirQinoSimulator:
        """Replay recorded responses (see ``elt.simulator.recorded``); clock frozen at ``now``.

        Without ``now`` the clock stops 30 minutes into the newest recorded hour, so the first response is
        the recording as it was fetched.
        """
        stations = load_recorded_dir(directory, names)
        if now is None:
            last = max((s.last_hour for s in stations.values() if s.last_hour is not None), default=0)
            now = hour_start(last) + timedelta(minutes=30)
        kwargs.setdefault("clock", SimClock(now))
        return cls(stations.values(), **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> AirQinoSimulator:
        """Start serving in a background thread (idempotent)."""
        if self._httpd is None:
            self.stopping.clear()
            self._httpd = SimulatorHTTPServer(self._address, self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="airqino-sim",
                daemon=True,
            )
            self._thread.start()
            log.info("AirQino simulator serving %d station(s) at %s", len(self.stations), self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving; delayed responses in flight are abandoned."""
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AirQinoSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not running: call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_url(self) -> str:
        """The fake Keycloak token endpoint."""
        return self.base_url + TOKEN_PATH

    def station_url(self, station_id: str) -> str:
        """The data URL of one station."""
        return self.base_url + DATA_PATH.format(station_id=station_id)

    # -- clock -------------------------------------------------------------------------------------------

    def set_now(self, now: datetime) -> None:
        """Set the simulated instant (naive = UTC)."""
        self.clock.set(now)

    def advance(self, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
        """Move the simulated clock on; returns the new instant."""
        return self.clock.advance(hours=hours, minutes=minutes, seconds=seconds)

    # -- faults and revisions ----------------------------------------------------------------------------

    def set_fault(self, station_id: str, *faults: Fault) -> None:
        """Replace ``station_id``'s fault queue: each request consumes the first fault (``Fault.times``)."""
        with self._lock:
            self._faults[station_id] = deque([fault, fault.times] for fault in faults)

    def add_fault(self, station_id: str, fault: Fault) -> None:
        """Append one fault to ``station_id``'s queue."""
        with self._lock:
            self._faults.setdefault(station_id, deque()).append([fault, fault.times])

    def clear_faults(self, station_id: str | None = None) -> None:
        """Drop the pending faults of one station (or of all)."""
        with self._lock:
            if station_id is None:
                self._faults.clear()
            else:
                self._faults.pop(station_id, None)

    def revise_history(self, station_id: str, *changes: RowsTransform) -> None:
        """Change ``station_id``'s rows server-side from now on (every later response shows the change)."""
        with self._lock:
            self._revisions.setdefault(station_id, []).extend(changes)

    def clear_revisions(self, station_id: str | None = None) -> None:
        """Forget history revisions of one station (or of all)."""
        with self._lock:
            if station_id is None:
                self._revisions.clear()
            else:
                self._revisions.pop(station_id, None)

    def _next_fault(self, station_id: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(station_id)
            if not queue:
                return None
            entry = queue[0]
            if entry[1] is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    queue.popleft()
            return entry[0]

    # -- request accounting ------------------------------------------------------------------------------

    def request_count(self, station_id: str | None = None) -> int:
        """Data requests received for ``station_id`` (all stations when None), whatever their answer."""
        with self._lock:
            return self._counts[station_id] if station_id is not None else sum(self._counts.values())

    def token_request_count(self) -> int:
        """Requests received by the token endpoint."""
        with self._lock:
            return sum(1 for r in self._records if r.path == TOKEN_PATH)

    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._records)

    def reset_counts(self) -> None:
        """Forget recorded requests and counts."""
        with self._lock:
            self._records.clear()
            self._counts.clear()

    def record(self, record: RequestRecord) -> None:
        """Remember one answered request (called by the HTTP handler)."""
        with self._lock:
            self._records.append(record)
            if record.station_id is not None:
                self._counts[record.station_id] += 1

    # -- answering ---------------------------------------------------------------------------------------

    def data_reply(self, station_id: str, query: Mapping[str, str], authorization: str | None) -> Reply:
        """The answer to ``GET /v3/getStationHourlyAvg/{station_id}`` (also usable without HTTP)."""
        now = self.clock()
        path = DATA_PATH.format(station_id=station_id)
        fault = self._next_fault(station_id)
        if fault is not None and fault.status is not None:
            body = fault.body if fault.body is not None else self.error_body(fault.status, path, now)
            return Reply(fault.status, body, fault.content_type, fault.headers, fault.delay_s)
        delay_s = fault.delay_s if fault is not None else 0.0
        if self.auth is not None and not self.auth.is_authorized(authorization):
            return Reply(401, b"{}", delay_s=delay_s)
        station = self.stations.get(station_id)
        if station is None:
            return Reply(404, self.error_body(404, path, now), delay_s=delay_s)
        try:
            start = parse_query_date(query["start_date"]) if query.get("start_date") else None
            end = parse_query_date(query["end_date"]) if query.get("end_date") else None
        except ValueError:
            message = "start_date and end_date must look like YYYYmmdd-HHMM"
            return Reply(400, self.error_body(400, path, now, message), delay_s=delay_s)
        with self._lock:
            transforms = list(self._revisions.get(station_id, ()))
        if fault is not None and fault.rows is not None:
            transforms.append(fault.rows)
        window = window_for(now, self.window_days, start, end)
        body = station_body(station, now, window, self.seed, transforms)
        if fault is None:
            return Reply(200, body)
        return Reply(200, body, delay_s=delay_s, truncate_to=fault.truncate_to, close_early=fault.close_early)

    def token_reply(self, form: Mapping[str, str]) -> Reply:
        """The answer to ``POST /realms/airqino/protocol/openid-connect/token``."""
        if self.auth is None:
            return Reply(404, json.dumps({"error": "Realm does not exist"}).encode())
        status, payload = self.auth.grant(form)
        return Reply(status, json.dumps(payload).encode())

    def error_body(self, status: int, path: str, now: datetime | None = None, message: str = "") -> bytes:
        """A JSON error like the API framework's default (Spring Boot's shape)."""
        now = now or self.clock()
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        payload = {"timestamp": now.isoformat(timespec="milliseconds"), "status": status, "error": reason}
        if message:
            payload["message"] = message
        payload["path"] = path
        return json.dumps(payload).encode()
