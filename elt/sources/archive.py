"""Recorded AirQino responses as a source (``elt load --from-dir``, ``elt forecast backtest --recorded``).

One JSON file per station, ``<station_id>.json`` (or a file stem mapped to a station id), holding a full
response or a bare ``data`` array. The API's newest row is always the hour still filling when it was fetched,
so unless ``fetched_at`` is given an archive is taken to have been fetched 30 minutes into its newest hour: its
newest row is provisional exactly as the live path would have marked it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from elt.errors import SourceError
from elt.sources.base import FetchedResponse, FetchError
from elt.sources.rows import parse_timestamp
from elt.utc import as_utc

#: Where inside its newest hour an archived response is assumed to have been fetched.
ARCHIVE_FETCH_OFFSET = timedelta(minutes=30)


@dataclass
class ArchiveSource:
    """Recorded responses in a directory: ``<name>.json`` per station, names mapped to station ids."""

    directory: Path
    #: file stem -> station id for archives not named by station id (``station1_data`` -> ``283164601``).
    file_map: dict[str, str] = field(default_factory=dict)
    #: The fetch instant of every file, when known; else inferred per file (see module docstring).
    fetched_at: datetime | None = None
    mode: ClassVar[str] = "archive"

    def path_for(self, station_id: str) -> Path:
        """The archive file of a station."""
        stems = [stem for stem, sid in self.file_map.items() if sid == station_id] or [station_id]
        return self.directory / f"{stems[0]}.json"

    def location(self, station_id: str) -> str:
        """The archive file of a station, as text."""
        return str(self.path_for(station_id))

    def fetch(
        self, station_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> FetchedResponse:
        """The archived response of a station, as if it had just been fetched (whole: the window is ignored)."""
        path = self.path_for(station_id)
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise SourceError(
                f"{path}: cannot read the archived response for station {station_id} ({exc.strerror}); "
                "files are named <station_id>.json (or mapped with --map FILE_STEM=STATION_ID)"
            ) from None
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise FetchError(
                f"{path}: not valid JSON ({exc}): truncated or corrupt", str(path), None, len(body)
            ) from None
        fetched_at = self.fetched_at or _archive_fetch_time(payload, path)
        return FetchedResponse(station_id, str(path), 200, len(body), payload, as_utc(fetched_at), 1)


def _archive_fetch_time(payload: Any, path: Path) -> datetime:
    """30 minutes into the newest hour of the archive; the file's mtime when no timestamp parses."""
    newest: datetime | None = None
    rows = (
        payload if isinstance(payload, list) else payload.get("data") if isinstance(payload, dict) else None
    )
    for row in rows or []:
        try:
            ts = parse_timestamp(row.get("timestamp")) if isinstance(row, dict) else None
        except ValueError:
            continue
        if ts is not None and (newest is None or ts > newest):
            newest = ts
    if newest is None:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return newest + ARCHIVE_FETCH_OFFSET
