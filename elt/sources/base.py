"""What every source of station data gives ``elt load``: one interface, a response, a failure.

``LoadTask`` receives a ``StationSource`` and does not know which one it has: the HTTP client of the AirQino
API (``elt.sources.airqino.AirqinoClient``) or a directory of recorded responses
(``elt.sources.archive.ArchiveSource``, ``elt load --from-dir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from elt.errors import SourceError
from elt.logs import redact


@dataclass
class FetchedResponse:
    """One station's successful response."""

    station_id: str
    url: str
    http_status: int
    bytes: int
    payload: Any
    #: The server's clock at response time (``Date`` header), else the local clock: the "current hour".
    fetched_at: datetime
    attempts: int


class FetchError(SourceError):
    """A station fetch that failed after retries, with what the audit needs to explain it."""

    def __init__(
        self, message: str, url: str, http_status: int | None = None, nbytes: int = 0, attempts: int = 1
    ):
        super().__init__(redact(message))
        self.url = url
        self.http_status = http_status
        self.bytes = nbytes
        self.attempts = attempts


class StationSource(Protocol):
    """Where ``elt load`` gets one station's response."""

    #: How the load audit (``load_batches.mode``) names this source: ``api`` or ``archive``.
    mode: str

    def location(self, station_id: str) -> str:
        """Where a station's data is read from (a URL or a file path), safe to log."""
        ...

    def fetch(
        self, station_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> FetchedResponse:
        """One station's response, the hours in ``[since, until)`` when the source can narrow to them (it may
        return more); ``FetchError`` or another ``SourceError`` when it cannot."""
        ...
