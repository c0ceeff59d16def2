"""One ``elt load`` run: for each station fetch from the source (the API or an archive), validate, land, audit.

Stations run in parallel (``source.concurrency``) and are isolated: one failing station is recorded as
failed in ``load_batches`` and in the result, and the others still land. Every station gets one audit
document, written with ``status: running`` before anything else and finalized at the end (a ``running`` row
that never ends is a killed load; the rerun re-applies it).

The source is a ``elt.sources.base.StationSource``: the API client, or recorded responses (``--from-dir``,
``elt.sources.archive``); the task does not know which.

Windows never throw data away (``elt run``, every trigger): ``since``/``until`` say which hours the run is
responsible for, and every new or changed row the source returned is landed, inside the window or not (the
audit's ``outside_window`` counts the rows outside it, landed all the same). Only ``elt load --since/--until``
(``restrict_to_window=True``) lands the window alone: a surgical reload the user asked for. With the API's
date range switched on (``source.send_date_range``), a station with nothing landed yet is fetched without a
range, so a first run lands the whole history whatever its window.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Protocol

from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.errors import EltError, LoadError
from elt.load.landing import LandingCounts, ensure_load_indexes, land_response
from elt.load.prefilter import has_landed, refresh_day_digests, skip_unchanged
from elt.logs import redact
from elt.sources.airqino import AirqinoSource
from elt.sources.base import FetchError, StationSource
from elt.sources.rows import HourlyRow, parse_rows
from elt.utc import as_utc

log = logging.getLogger(__name__)

#: The landing counters a station's result copies from ``land_response`` (``LandingCounts``' fields).
_COUNT_FIELDS = tuple(f.name for f in fields(LandingCounts))
_AUDIT_FIELDS = (
    "status", "received", "seconds", "error", "duplicates", "outside_window", "outside_window_landed",
    *_COUNT_FIELDS,
)  # fmt: skip


class LoadProgress(Protocol):
    """What the task reports while it runs (the CLI draws progress bars from it)."""

    def phase(self, station_id: str, description: str, total: int | None = None) -> None:
        """A station enters a phase (fetching, landing N rows)."""

    def advance(self, station_id: str, rows: int) -> None:
        """``rows`` more rows of the station were landed."""

    def done(self, outcome: StationLoadResult) -> None:
        """A station finished, ok or failed."""


#: A station's row counters, in the order ``--json`` and the summary table show them.
ROW_COUNTS = ("received", "inserted", "updated", "unchanged", "rejected")


@dataclass(kw_only=True)
class StationLoadResult(LandingCounts):
    """The outcome of one station in one run (also what ``load_batches`` records): the landing counters of
    ``LandingCounts`` plus what the fetch and the window add."""

    station_id: str
    status: str = "running"
    received: int = 0
    seconds: float = 0.0
    error: str | None = None
    duplicates: int = 0
    outside_window: int = 0
    """Rows the source returned outside ``[since, until)`` (landed unless the task restricts to the window)."""
    outside_window_landed: bool = True
    """False only for ``elt load --since/--until``, which lands the window alone."""

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` shape of a station (field names are a public contract)."""
        keys = ("station_id", "status", *ROW_COUNTS, "seconds", "error")
        return {key: getattr(self, key) for key in keys}


@dataclass
class LoadResult:
    """The outcome of a run: one result per station and the run's batch id."""

    batch_id: str
    stations: list[StationLoadResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every station loaded."""
        return all(s.status == "ok" for s in self.stations)

    @property
    def rows_per_second(self) -> float:
        """Rows received per wall-clock second over the whole run (fetch + validate + land)."""
        received = sum(s.received for s in self.stations)
        return round(received / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "stations": [s.as_json() for s in self.stations],
            "batch_id": self.batch_id,
            "rows_per_second": self.rows_per_second,
        }


def new_batch_id(now: datetime | None = None) -> str:
    """A sortable, unique run id, e.g. ``20240909T101500Z-3fa2c1``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class LoadTask:
    """Load a set of stations from a source (the API client or archived responses)."""

    def __init__(
        self,
        db: Database,
        station_ids: list[str],
        source: StationSource,
        since: datetime | None = None,
        until: datetime | None = None,
        concurrency: int = 4,
        progress: LoadProgress | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        restrict_to_window: bool = False,
    ):
        self.db = db
        self.station_ids = station_ids
        self.source = source
        self.since = as_utc(since) if since else None
        self.until = as_utc(until) if until else None
        self.concurrency = max(1, concurrency)
        self.progress = progress
        self.clock = clock
        self.restrict_to_window = restrict_to_window
        self.batch_id = new_batch_id(clock())

    def run(self) -> LoadResult:
        """Load every station (in parallel, isolated from each other) and return the per-station results."""
        started = time.perf_counter()
        try:
            ensure_load_indexes(self.db)
        except PyMongoError as exc:
            raise LoadError(f"cannot prepare the raw collections: {redact(str(exc))[:300]}") from None
        result = LoadResult(batch_id=self.batch_id)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(self.station_ids)))) as pool:
            result.stations = list(pool.map(self.load_station, self.station_ids))
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    def load_station(self, station_id: str) -> StationLoadResult:
        """Fetch, validate and land one station; never raises (a failure goes to the result and the audit)."""
        started = time.perf_counter()
        outcome = StationLoadResult(station_id=station_id)
        audit_id = f"{self.batch_id}/{station_id}"
        started_at = self.clock()
        url = self.source.location(station_id)
        facts: dict[str, Any] = {"url": url}
        try:
            self.db[AirqinoSource.batches_collection].insert_one(
                {"_id": audit_id, "batch_id": self.batch_id, "station_id": station_id, "status": "running",
                 "mode": self.source.mode, "url": url, "started_at": started_at}
            )  # fmt: skip
            self._fetch_and_land(station_id, outcome, started, facts)
            outcome.status = "ok"
        except FetchError as exc:
            outcome.status, outcome.error = "failed", redact(str(exc))
            facts.update(url=exc.url, http_status=exc.http_status, bytes=exc.bytes, attempts=exc.attempts)
        except EltError as exc:
            outcome.status, outcome.error = "failed", redact(str(exc))
        except PyMongoError as exc:
            outcome.status = "failed"
            outcome.error = f"MongoDB error while landing: {type(exc).__name__}: {redact(str(exc))[:300]}"
        except Exception as exc:  # noqa: BLE001 - one station's bug must not stop the others; the audit says why
            log.exception("station %s: unexpected error", station_id)
            outcome.status = "failed"
            outcome.error = f"unexpected {type(exc).__name__}: {redact(str(exc))[:300]}"
        outcome.seconds = round(time.perf_counter() - started, 3)
        if outcome.error:
            log.error("station %s: %s", station_id, outcome.error)
        else:
            log.info(
                "station %s: %d received, %d inserted, %d updated, %d unchanged, %d rejected in %.1f s",
                station_id, outcome.received, outcome.inserted, outcome.updated, outcome.unchanged,
                outcome.rejected, outcome.seconds,
            )  # fmt: skip
        self._finalize_audit(audit_id, outcome, started_at, facts)
        if self.progress:
            self.progress.done(outcome)
        return outcome

    def _fetch_and_land(
        self, station_id: str, outcome: StationLoadResult, started: float, facts: dict[str, Any]
    ) -> None:
        """The happy path of one station: fills ``outcome``, and ``facts`` (for the audit) as they are known."""
        self._phase(station_id, "fetching")
        since, until = self._fetch_range(station_id)
        fetched = self.source.fetch(station_id, since, until)
        fetch_seconds = time.perf_counter() - started
        facts.update(url=fetched.url, http_status=fetched.http_status, bytes=fetched.bytes,
                     attempts=fetched.attempts, fetched_at=fetched.fetched_at)  # fmt: skip
        data = AirqinoSource.data_rows(fetched.payload, fetched.url)
        known = skip_unchanged(
            self.db, station_id, data, fetched.fetched_at
        )  # validate only new/changed rows
        parsed = parse_rows(station_id, known.rows, fetched.fetched_at)
        validate_seconds = time.perf_counter() - started - fetch_seconds
        outcome.received, outcome.duplicates = len(data), parsed.duplicates
        parsed.rows, outcome.outside_window = self._in_window(parsed.rows)
        in_window = [ts for ts in known.unchanged if self._covers(ts)]
        outcome.outside_window += len(known.unchanged) - len(in_window)
        if self.restrict_to_window:
            known.unchanged = in_window
        outcome.outside_window_landed = not self.restrict_to_window
        self._phase(station_id, "landing", len(parsed.rows) + len(known.unchanged))
        counts = land_response(
            self.db, parsed, self.batch_id, self.clock(), self._advance(station_id), known=known
        )
        refresh_day_digests(self.db, station_id, known.dirty_days)
        for key in _COUNT_FIELDS:
            setattr(outcome, key, getattr(counts, key))
        land_seconds = time.perf_counter() - started - fetch_seconds - validate_seconds
        stamps = known.unchanged + [t for t in (parsed.first_ts, parsed.last_ts) if t]
        facts.update(first_ts=min(stamps, default=None), last_ts=max(stamps, default=None))
        facts["phase_seconds"] = {
            "fetch": round(fetch_seconds, 3),
            "validate": round(validate_seconds, 3),
            "land": round(land_seconds, 3),
        }

    def _fetch_range(self, station_id: str) -> tuple[datetime | None, datetime | None]:
        """The date range asked of the API (sent only with ``send_date_range``).

        Restricted: the window. Otherwise open-ended (rows after the window are landed too), and no range at
        all for a station with nothing landed yet: its first load is its whole history.
        """
        if self.restrict_to_window:
            return self.since, self.until
        if self.since is None:
            return None, None
        return (self.since, None) if has_landed(self.db, station_id) else (None, None)

    def _covers(self, ts: datetime) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)

    def _in_window(self, rows: list[HourlyRow]) -> tuple[list[HourlyRow], int]:
        """The rows to land and how many of the returned rows fall outside ``[since, until)``."""
        if self.since is None and self.until is None:
            return rows, 0
        inside = [
            r
            for r in rows
            if (self.since is None or r.ts >= self.since) and (self.until is None or r.ts < self.until)
        ]
        outside = len(rows) - len(inside)
        return (inside if self.restrict_to_window else rows), outside

    def _finalize_audit(
        self, audit_id: str, outcome: StationLoadResult, started_at: datetime, facts: dict[str, Any]
    ) -> None:
        update: dict[str, Any] = {key: getattr(outcome, key) for key in _AUDIT_FIELDS}
        update.update(facts, finished_at=self.clock())
        try:
            self.db[AirqinoSource.batches_collection].update_one(
                {"_id": audit_id},
                {"$set": update, "$setOnInsert": {"batch_id": self.batch_id, "station_id": outcome.station_id,
                                                  "started_at": started_at}},
                upsert=True,
            )  # fmt: skip
        except PyMongoError as exc:
            log.error(
                "station %s: cannot write the load audit: %s", outcome.station_id, redact(str(exc))[:300]
            )

    def _phase(self, station_id: str, description: str, total: int | None = None) -> None:
        if self.progress:
            self.progress.phase(station_id, description, total)

    def _advance(self, station_id: str) -> Callable[[int], None] | None:
        if not self.progress:
            return None
        progress = self.progress
        return lambda rows: progress.advance(station_id, rows)
