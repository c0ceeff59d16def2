"""The time window a run is responsible for.

A window never filters what is landed: every run lands every new or changed row the source returned, inside
the window or not (a first run on an empty database lands the whole history, whatever the trigger; a rewrite
5 days back lands on the next hourly run, and the transform rebuilds the partitions it touched). The window
decides which hours the run must see final (an Airflow interval is done when its hours are landed) and which
partitions it answers for (data tests judge freshness at its end).

- Explicit (``--start``, optionally ``--end``): exact, for backfills and Airflow data intervals; no lookback.
  The hours the run answers for are those starting in ``[floor_hour(start), floor_hour(end))``: consecutive
  windows partition the hours, and an hour is final by the first window whose end is past the hour's end.
- Default: from the end of the last full successful run minus the lookback (late and revised data, the hour
  that was still filling) up to now, open-ended so the newest, provisional hour is landed too.
- Initial (no successful run yet): everything the source returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.database import Database

from elt.errors import ConfigError
from elt.run.runlog import last_successful_run
from elt.settings import settings
from elt.utc import as_utc


def default_lookback_hours() -> float:
    """The lookback in hours before the last successful run's end: ``ELT_RUN_LOOKBACK_HOURS`` or 48."""
    return settings().run_lookback_hours


def floor_hour(value: datetime) -> datetime:
    """The start of the UTC hour ``value`` falls in."""
    return as_utc(value).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class RunWindow:
    """What a run loads and transforms: ``[start, end)``; ``start`` None means everything available."""

    start: datetime | None
    end: datetime
    mode: str
    """``explicit``, ``incremental`` (default window after a successful run) or ``initial``."""

    @property
    def exact(self) -> bool:
        """An explicit window is exact: rows at or after ``end`` are not landed."""
        return self.mode == "explicit"

    @property
    def load_since(self) -> datetime | None:
        """The first hour the run answers for: the start of the hour ``start`` falls in (None: everything).

        Rows before it are landed too (counted as ``outside_window`` in the load audit)."""
        return floor_hour(self.start) if self.start is not None else None

    @property
    def load_until(self) -> datetime | None:
        """The end of the hours the run answers for: when exact, the start of the hour ``end`` falls in, so
        the hours that had ended by ``end`` (Airflow's 10:05-11:05 interval answers for the 10:00 hour); else
        open. Newer rows, the provisional hour included, are landed all the same."""
        return floor_hour(self.end) if self.exact else None

    def as_doc(self) -> dict[str, Any]:
        """The window as stored in ``elt_runs``."""
        return {"start": self.start, "end": self.end, "mode": self.mode}

    def describe(self) -> str:
        """``2024-09-08 10:00 -> 2024-09-09 10:30 UTC (incremental)``."""
        start = f"{self.start:%Y-%m-%d %H:%M}" if self.start else "everything available"
        return f"{start} -> {self.end:%Y-%m-%d %H:%M} UTC ({self.mode})"


def resolve_window(
    db: Database,
    start: datetime | None = None,
    end: datetime | None = None,
    lookback_hours: float | None = None,
    now: datetime | None = None,
) -> RunWindow:
    """The window of a run (see the module docstring); a ConfigError if the explicit bounds are unusable."""
    now = as_utc(now or datetime.now(timezone.utc))
    if end is not None and start is None:
        raise ConfigError("--end needs --start: an explicit window is exact, give both (UTC), e.g. "
                          "--start 2024-09-01 --end 2024-09-02")  # fmt: skip
    if start is not None:
        start, end = as_utc(start), as_utc(end) if end is not None else now
        if start >= end:
            raise ConfigError(f"--start ({start:%Y-%m-%d %H:%M}) must be before --end ({end:%Y-%m-%d %H:%M})")
        return RunWindow(start, end, "explicit")
    last = last_successful_run(db)
    if last is None or not (last.get("window") or {}).get("end"):
        return RunWindow(None, now, "initial")
    lookback = default_lookback_hours() if lookback_hours is None else lookback_hours
    anchor = min(as_utc(last["window"]["end"]), now)
    return RunWindow(anchor - timedelta(hours=lookback), now, "incremental")
