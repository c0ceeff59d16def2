"""The five steps of a run, each an adapter around the programmatic API of its part of airqino-elt.

A step returns a ``StepOutcome`` (ok or failed, with counts) or raises ``StepSkipped`` when an optional part
cannot run here (the forecast extra is not installed, no ``SERVING_DSN`` for publish): the run records the
reason and goes on. An ``EltError`` raised by a step is its failure, recorded with the message.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from elt.config import Project
from elt.run.window import RunWindow

log = logging.getLogger(__name__)


class StepSkipped(Exception):
    """An optional step cannot run in this installation; the message is the recorded reason."""


@dataclass
class StepContext:
    """What every step receives."""

    project: Project
    db: Database
    window: RunWindow
    run_id: str
    demo: bool = False


@dataclass
class StepOutcome:
    """A step's result: ``ok`` or ``failed`` (with ``error``), and what it counted."""

    status: str = "ok"
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


#: A step: context in, outcome out (may raise StepSkipped or EltError).
StepFunction = Callable[[StepContext], StepOutcome]


def load_step(ctx: StepContext) -> StepOutcome:
    """Land every enabled station over the window (``elt load``); a failing station fails the step only."""
    from elt.load.task import LoadTask
    from elt.sources.airqino import AirqinoClient, ClientSettings

    source = ctx.project.config.source
    station_ids = [s.id for s in ctx.project.enabled_stations()]
    task = LoadTask(
        ctx.db, station_ids, client=AirqinoClient(ClientSettings.from_config(source)),
        since=ctx.window.load_since, until=ctx.window.load_until, concurrency=source.concurrency,
    )  # fmt: skip
    result = task.run()
    counts: dict[str, Any] = {"batch_id": result.batch_id, "stations": len(result.stations)}
    for key in ("received", "inserted", "updated", "unchanged", "rejected"):
        counts[key] = sum(getattr(s, key) for s in result.stations)
    failed = [s for s in result.stations if s.status != "ok"]
    counts["stations_failed"] = len(failed)
    if failed:
        error = "; ".join(f"station {s.station_id}: {s.error}" for s in failed)
        return StepOutcome(
            "failed", counts, f"{len(failed)} of {len(result.stations)} station(s) failed: {error}"
        )
    return StepOutcome("ok", counts)


def transform_step(ctx: StepContext) -> StepOutcome:
    """Run the aggregation models (``elt transform``): staging, then marts, only the intervals that changed."""
    from elt.transform import run_transform

    result = run_transform(ctx.project, ctx.db, run_id=ctx.run_id)
    return _outcome_of(result)


def data_tests_step(ctx: StepContext) -> StepOutcome:
    """Run the data tests (``elt test``); a failing error-severity test fails the step."""
    from elt.transform import run_tests

    # freshness is judged at the window's end: a backfill of last month is not "stale"
    result = run_tests(ctx.project, ctx.db, run_id=ctx.run_id, now=ctx.window.end)
    return _outcome_of(result)


def forecast_step(ctx: StepContext) -> StepOutcome:
    """Write the next two hours' CO and PM2.5 forecasts (``elt forecast predict``, training when due)."""
    from elt.forecast import EXTRA_MODULES

    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise StepSkipped(
            f"the forecast extra is not installed (missing {', '.join(missing)}): "
            'pip install "airqino-elt[forecast]"'
        )
    from elt.forecast.run import run_forecast

    # the window's end is the run's "now": forecast health judges how current each origin is against it
    return _outcome_of(run_forecast(ctx.project, ctx.db, run_id=ctx.run_id, now=ctx.window.end))


def publish_step(ctx: StepContext) -> StepOutcome:
    """Copy the marts to PostgreSQL (``elt publish``) when ``SERVING_DSN`` is configured."""
    if ctx.project.target.serving_dsn is None:
        raise StepSkipped(
            "no SERVING_DSN configured (set it to publish the marts to PostgreSQL for Superset)"
        )
    if importlib.util.find_spec("psycopg") is None:
        raise StepSkipped('psycopg is not installed: pip install "airqino-elt[publish]"')
    from elt.publish import publish_marts

    result = publish_marts(ctx.project, ctx.db)
    summary = result.to_dict()
    return StepOutcome("ok", {"rows_written": summary["rows_written"], "tables": len(summary["tables"]),
                              "skipped_tables": len(summary["skipped"])})  # fmt: skip


def _outcome_of(result: Any) -> StepOutcome:
    """An outcome from a task result exposing ``ok`` and ``counts()``/``as_json()`` (duck-typed)."""
    counts: dict[str, Any] = {}
    if hasattr(result, "counts"):
        counts = dict(result.counts())
    ok = bool(getattr(result, "ok", True))
    error = None if ok else str(getattr(result, "error", None) or "see the step's log")
    return StepOutcome("ok" if ok else "failed", counts, error)


#: The steps in run order.
STEPS: dict[str, StepFunction] = {
    "load": load_step,
    "transform": transform_step,
    "test": data_tests_step,
    "forecast": forecast_step,
    "publish": publish_step,
}

#: When a step fails, these later steps are skipped (a failed transform leaves nothing to test, forecast or
#: publish; failed tests keep possibly wrong marts away from the dashboards).
BLOCKS: dict[str, tuple[str, ...]] = {
    "transform": ("test", "forecast", "publish"),
    "test": ("publish",),
}
