"""Replay of recorded API responses: one file per station, served as a rolling window ending at "now".

A file is either a full response (``{"header": ..., "data": [...]}``) named ``<station_id>.json``, or a
bare ``data`` array (as some people saved them) whose file name maps to a station id through ``names``. Rows
are kept verbatim (same keys, same values, negatives and all); set the simulator's clock to an instant inside
the recording to replay it hour by hour.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Any

from elt.errors import SourceError
from elt.simulator.generate import BRIEF_STATIONS
from elt.simulator.response import Row
from elt.simulator.timeutil import parse_timestamp


class RecordedStation:
    """One station's recorded rows, indexed by epoch hour."""

    def __init__(self, station_id: str, header: dict[str, Any], rows: list[Row]) -> None:
        self.station_id = station_id
        self._header = dict(header)
        indexed = sorted(((parse_timestamp(row["timestamp"]), row) for row in rows), key=lambda item: item[0])
        self._hours = [hour for hour, _ in indexed]
        self._rows = [(hour, json.dumps(row)) for hour, row in indexed]

    @property
    def first_hour(self) -> int | None:
        """The oldest recorded hour (None for an empty recording)."""
        return self._hours[0] if self._hours else None

    @property
    def last_hour(self) -> int | None:
        """The newest recorded hour (None for an empty recording)."""
        return self._hours[-1] if self._hours else None

    def header(self) -> dict[str, Any]:
        """The recorded header (or one built from the station's known name for data-only files)."""
        return dict(self._header)

    def final_rows(self, first_hour: int, last_hour: int) -> list[tuple[int, str]]:
        """Recorded ``(hour, row JSON text)`` in ``[first_hour, last_hour]``, in time order."""
        lo = bisect.bisect_left(self._hours, first_hour)
        hi = bisect.bisect_right(self._hours, last_hour)
        return self._rows[lo:hi]

    def final_row(self, hour: int) -> Row | None:
        """The recorded row of ``hour`` (the first one when the recording has duplicates)."""
        i = bisect.bisect_left(self._hours, hour)
        return json.loads(self._rows[i][1]) if i < len(self._hours) and self._hours[i] == hour else None


def _default_header(station_id: str, fallback_name: str) -> dict[str, Any]:
    for spec in BRIEF_STATIONS:
        if spec.id == station_id:
            return {"station_name": spec.name, "station_lat": spec.lat, "station_lon": spec.lon}
    return {"station_name": fallback_name, "station_lat": 0.0, "station_lon": 0.0}


def load_recorded_file(path: Path, station_id: str | None = None) -> RecordedStation:
    """Read a recorded response (full or data-only) as the station ``station_id`` (default: the file stem)."""
    station_id = station_id or path.stem
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read recorded AirQino response {path}: {exc}") from exc
    if isinstance(payload, list):
        return RecordedStation(station_id, _default_header(station_id, path.stem), payload)
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        header = payload.get("header") or _default_header(station_id, path.stem)
        return RecordedStation(station_id, header, payload["data"])
    raise SourceError(
        f"{path} is not a recorded AirQino response: expected {{'header', 'data'}} or a list of rows"
    )


def load_recorded_dir(directory: Path, names: dict[str, str] | None = None) -> dict[str, RecordedStation]:
    """Every ``*.json`` of ``directory`` as a station, keyed by station id.

    ``names`` maps a file stem to a station id (e.g. ``{"station1_data": "283164601"}``); other files must be
    named ``<station_id>.json``.
    """
    directory = Path(directory)
    files = sorted(directory.glob("*.json"))
    if not files:
        raise SourceError(f"no recorded responses (*.json) in {directory}")
    names = names or {}
    stations = {}
    for path in files:
        station = load_recorded_file(path, names.get(path.stem))
        stations[station.station_id] = station
    return stations
