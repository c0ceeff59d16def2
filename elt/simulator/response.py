"""Building a ``getStationHourlyAvg`` response body from a station's rows, like the real API does.

The response holds the rolling window of final rows plus the current, still-filling hour. That newest row is
provisional: its values are the final ones blended with a deterministic "partial average" drift that shrinks
as the hour fills, so two calls in the same hour differ while the same instant always gives the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from elt.simulator.timeutil import hour_of
from elt.utc import as_utc

Row = dict[str, Any]
#: Relative humidity saturates at this value in AirQino data.
RH_MAX = 99.8
#: A change applied to a response's rows: ``(rows, now) -> rows`` (faults, server-side history revisions).
RowsTransform = Callable[[list[Row], datetime], list[Row]]


class StationData(Protocol):
    """What the server needs from a station, generated or recorded."""

    station_id: str

    def header(self) -> dict[str, Any]:
        """The response header (``station_name``, ``station_lat``, ``station_lon``)."""
        ...

    def final_rows(self, first_hour: int, last_hour: int) -> list[tuple[int, str]]:
        """``(epoch hour, row JSON text)`` of the present hours in ``[first_hour, last_hour]``, sorted."""
        ...

    def final_row(self, hour: int) -> Row | None:
        """The final row of ``hour``, or None when the hour has no row."""
        ...


@dataclass(frozen=True)
class Window:
    """The epoch hours a response covers (both ends inclusive) and the current, provisional hour."""

    first_hour: int
    last_hour: int
    current_hour: int


def window_for(now: datetime, window_days: int, start: datetime | None, end: datetime | None) -> Window:
    """The hours a request at ``now`` returns: the rolling window, or ``[start, end]`` capped at now.

    ``start``/``end`` (the optional query parameters) are inclusive; a start is rounded up to a whole hour.
    """
    current = hour_of(now)
    first = current - window_days * 24 + 1
    last = current
    if start is not None:
        start_hour = hour_of(start)
        first = start_hour if as_utc(start).timestamp() % 3600 == 0 else start_hour + 1
    if end is not None:
        last = min(last, hour_of(end))
    return Window(first, last, current)


def provisional_row(final: Row, now: datetime, station_id: str, seed: int) -> Row:
    """The newest row as a fetch at ``now`` sees it: an average of the minutes elapsed so far.

    The drift is up to ±15 % at the start of the hour and vanishes at its end; exact zeros stay zero.
    """
    moment = as_utc(now)
    elapsed = (moment.minute * 60 + moment.second) / 3600
    rng = random.Random(f"{seed}:{station_id}:{final['timestamp']}:{moment.minute}:{moment.second}")
    row: Row = {}
    for key, value in final.items():
        if isinstance(value, float):
            value = round(value * (1 + 0.15 * (1 - elapsed) * (2 * rng.random() - 1)), 5)
            value = min(value, RH_MAX) if key == "RH" else value
        row[key] = value
    return row


def render_body(
    header: dict[str, Any],
    final_rows: Sequence[tuple[int, str]],
    newest: Row | None,
    now: datetime,
    transforms: Sequence[RowsTransform] = (),
) -> bytes:
    """The JSON response body: ``{"header": ..., "data": [...]}`` with ``newest`` (if any) last.

    Without transforms the pre-rendered row texts are joined as they are (fast path); transforms get the rows
    as dicts and may change, add or drop any of them.
    """
    if transforms:
        rows = [json.loads(text) for _, text in final_rows]
        if newest is not None:
            rows.append(newest)
        for transform in transforms:
            rows = transform(rows, now)
        data = ", ".join(json.dumps(row) for row in rows)
    else:
        texts = [text for _, text in final_rows]
        if newest is not None:
            texts.append(json.dumps(newest))
        data = ", ".join(texts)
    return f'{{"header": {json.dumps(header)}, "data": [{data}]}}'.encode()


def station_body(
    station: StationData,
    now: datetime,
    window: Window,
    seed: int,
    transforms: Sequence[RowsTransform] = (),
) -> bytes:
    """The full response body of ``station`` for a request at ``now`` covering ``window``."""
    last_final = min(window.last_hour, window.current_hour - 1)
    finals = station.final_rows(window.first_hour, last_final) if window.first_hour <= last_final else []
    newest = None
    if window.first_hour <= window.current_hour <= window.last_hour:
        final = station.final_row(window.current_hour)
        newest = provisional_row(final, now, station.station_id, seed) if final is not None else None
    return render_body(station.header(), finals, newest, now, transforms)
