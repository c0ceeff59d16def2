"""HTTP plumbing of the simulator: the request handler, the threaded server and the reply/record types."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from elt.simulator.auth import TOKEN_PATH
from elt.utc import as_utc

if TYPE_CHECKING:
    from elt.simulator.server import AirQinoSimulator

log = logging.getLogger(__name__)

_DATA_ROUTE = re.compile(r"/v3/getStationHourlyAvg/([^/]+)/?")


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered."""

    method: str
    path: str
    station_id: str | None
    query: dict[str, str]
    status: int
    at: datetime
    """The simulated instant of the request."""
    authorization: bool
    """Whether the request carried an ``Authorization`` header."""


@dataclass
class Reply:
    """What the handler writes back."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    truncate_to: float | None = None
    close_early: bool = True


class SimulatorHTTPServer(ThreadingHTTPServer):
    """One thread per connection; threads never block shutdown."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: AirQinoSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    server: SimulatorHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        sim = self.server.simulator
        url = urlsplit(self.path)
        match = _DATA_ROUTE.fullmatch(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        station_id = unquote(match.group(1)) if match else None
        if station_id is not None:
            reply = sim.data_reply(station_id, query, self.headers.get("Authorization"))
        else:
            reply = Reply(404, sim.error_body(404, url.path))
        self._answer(reply, url.path, station_id, query)

    def do_POST(self) -> None:  # noqa: N802
        sim = self.server.simulator
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if url.path == TOKEN_PATH:
            reply = sim.token_reply(dict(parse_qsl(raw)))
        else:
            reply = Reply(405, sim.error_body(405, url.path))
        self._answer(reply, url.path, None, {})

    def _answer(self, reply: Reply, path: str, station_id: str | None, query: dict[str, str]) -> None:
        sim = self.server.simulator
        sim.record(
            RequestRecord(
                self.command,
                path,
                station_id,
                query,
                reply.status,
                sim.clock(),
                "Authorization" in self.headers,
            )
        )
        if reply.delay_s and sim.stopping.wait(reply.delay_s):
            self.close_connection = True
            return
        body = reply.body
        if reply.truncate_to is not None:
            body = body[: int(len(body) * reply.truncate_to)]
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            declared = len(reply.body) if reply.truncate_to is not None and reply.close_early else len(body)
            self.send_header("Content-Length", str(declared))
            for name, value in reply.headers:
                self.send_header(name, value)
            if declared != len(body):
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout fired)
            self.close_connection = True
            return
        if declared != len(body):
            self.close_connection = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header follows the simulated clock: clients take "the current hour" from it."""
        return format_datetime(as_utc(self.server.simulator.clock()), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s - %s", self.address_string(), format % args)
