"""The five steps of a run, each an adapter around the programmatic API of its part of airqino-elt.

A step returns a ``StepOutcome`` (ok or failed, with counts) or raises ``StepSkipped`` when an optional part
cannot run here (the forecast extra is not installed, no ``SERVING_DSN`` for publish): the run records the
reason and goes on. An ``EltError`` raised by a step is its failure, recorded with the message.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pymongo.database import Database

from elt.config import Project
from elt.failpoint import failpoint
from elt.models.project import ModelProject
from elt.models.shards import Shard
from elt.owned import FORECASTS_COLLECTION
from elt.run.window import RunWindow

log = logging.getLogger(__name__)

#: The models that read the forecasts (their descendants included): the forecast step rebuilds them.
FORECAST_MARTS = "source:elt.forecasts+"


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
    #: Run every data test on everything (``elt run --full-tests``), not only on what this run changed.
    full_tests: bool = False
    #: ``--shard i/N``: load and transform only this shard's stations (``elt.models.shards``).
    shard: Shard | None = None
    #: ``--after-shards``: the shards of this run did the per-station work; load sums their records and
    #: transform builds only the models that combine stations.
    after_shards: bool = False
    #: The steps this invocation runs: a transform followed by a forecast step leaves the models that read the
    #: forecasts to that step, which builds them once, after writing the forecasts.
    steps: tuple[str, ...] = ()
    #: Why this invocation's test step ran every test on everything (set by it; None: an audit or no test step).
    full_test_pass: str | None = None
    #: This run recovered an earlier one that was killed or crashed: what that one wrote may be in no change
    #: record (or in the record of a run that never published), so the tests and publish cover everything.
    after_crash: bool = False
    #: The project's models, loaded and validated once for the invocation (None: each step loads them).
    models: ModelProject | None = None
    #: The stored forecast model, being loaded in the background (``start_forecast_import``).
    forecast_model: Future | None = None


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

    if ctx.after_shards:
        return _shards_outcome(ctx, "load")
    source = ctx.project.config.source
    station_ids = [s.id for s in ctx.project.enabled_stations()]
    if ctx.shard is not None:
        station_ids = ctx.shard.stations(station_ids)
    task = LoadTask(
        ctx.db, station_ids, AirqinoClient(ClientSettings.from_config(source)),
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
    from elt.models.shards import PER_STATION_SELECTOR, merge_shard_changes
    from elt.transform.task import run_transform

    if ctx.shard is not None:
        from elt.transform.sharded import transform_shard

        built = transform_shard(ctx.project, ctx.db, ctx.shard, run_id=ctx.run_id)
        return StepOutcome("ok", {"stations": len(built["stations"]),
                                  "partitions": sum(m["partitions"] for m in built["models"]),
                                  "rows": sum(m["rows"] for m in built["models"])})  # fmt: skip
    if ctx.after_shards:
        shards = _shards_outcome(ctx, "transform")
        if shards.status == "failed":
            return shards
        merge_shard_changes(ctx.db, ctx.run_id)
        result = run_transform(ctx.project, ctx.db, exclude=[PER_STATION_SELECTOR], run_id=ctx.run_id,
                               models=ctx.models)  # fmt: skip
        outcome = _outcome_of(result)
        outcome.counts = {**shards.counts, **outcome.counts}
        return outcome
    result = run_transform(ctx.project, ctx.db, exclude=_left_to_forecast_step(ctx), run_id=ctx.run_id,
                           models=ctx.models)  # fmt: skip
    return _outcome_of(result)


def _left_to_forecast_step(ctx: StepContext) -> list[str]:
    """What the transform and test steps leave to a forecast step that follows in this invocation."""
    return [FORECAST_MARTS] if "forecast" in ctx.steps and not _missing_forecast_modules() else []


def _shards_outcome(ctx: StepContext, step: str) -> StepOutcome:
    """``step`` of a ``--after-shards`` call: what the shards of this run recorded, summed (failed when no
    shard ran it or one failed)."""
    from elt.run.runlog import shard_entries

    entries = shard_entries(ctx.db, ctx.run_id, step)
    counts: dict[str, Any] = {"shards": len(entries)}
    for entry in entries:
        for key, value in (entry.get("counts") or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                counts[key] = counts.get(key, 0) + value
    failed = [e for e in entries if e.get("status") != "ok"]
    if not entries:
        return StepOutcome("failed", counts, f"no shard ran {step} in run {ctx.run_id} (elt run --shard i/N)")
    if failed:
        error = "; ".join(f"shard {e.get('shard')}: {e.get('error') or e.get('status')}" for e in failed)
        return StepOutcome("failed", counts, error)
    return StepOutcome("ok", counts)


def full_test_pass_reason(ctx: StepContext, now: datetime | None = None) -> str | None:
    """Why this run's test step runs every test on everything (None: audit only what the run changed).

    A full pass runs when asked (``--full-tests``), when no transform of this run recorded its changes (e.g.
    ``elt run --step test``), and once a day: the first run after midnight UTC (or ever) does it.
    """
    from elt.models.changes import has_record
    from elt.transform.task import last_full_pass

    if ctx.full_tests:
        return "--full-tests"
    if ctx.after_crash:
        return "an earlier run was killed or crashed (what it wrote may be in no change record)"
    if not has_record(ctx.db, ctx.run_id):
        return "no change record of this run (its transform did not run)"
    last = last_full_pass(ctx.db)
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    if last is None:
        return "no full test pass recorded yet"
    if last.date() < today:
        return "first run of the day (UTC)"
    return None


def data_tests_step(ctx: StepContext) -> StepOutcome:
    """Run the data tests: an audit of the partitions this run wrote, or a full pass (daily, or when asked);
    a failing error-severity test fails the step either way."""
    from elt.models.changes import read_changes
    from elt.transform.task import run_tests

    reason = full_test_pass_reason(ctx)
    changes = None if reason else read_changes(ctx.db, ctx.run_id)
    if reason:
        log.info("data tests: full pass (%s)", reason)
    # freshness is judged at the window's end: a backfill of last month is not "stale"
    ctx.full_test_pass = reason
    result = run_tests(ctx.project, ctx.db, exclude=_left_to_forecast_step(ctx), run_id=ctx.run_id,
                       now=ctx.window.end, changes=changes, models=ctx.models)  # fmt: skip
    outcome = _outcome_of(result)
    if reason:
        outcome.counts["full_pass_reason"] = reason
    return outcome


def _missing_forecast_modules() -> list[str]:
    """The modules of the ``forecast`` extra that are not installed."""
    from elt.forecast import EXTRA_MODULES

    return [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]


def start_forecast_import(steps: tuple[str, ...], db: Database) -> Future | None:
    """Import the forecast modules (pandas and the forecast package; scikit-learn only when training is due),
    then load the stored forecast model (its trees' arrays; a model saved before they were stored is parsed
    through skops), in a background thread when a forecast step follows other steps: load and transform mostly
    wait on the API and the database, so this overlaps them. The steps' own modules are imported first, so the
    two threads never import the same module at the same time. The future's result is the loaded model, or None
    (none stored, refused, or any error: the forecast step then loads it itself and reports what fails)."""
    if "forecast" not in steps or steps[0] == "forecast" or _missing_forecast_modules():
        return None
    import elt.load.task  # noqa: F401 - the other steps' modules, before the thread starts
    import elt.models.changes  # noqa: F401
    import elt.sources.airqino  # noqa: F401
    import elt.transform.task  # noqa: F401

    loaded: Future = Future()

    def _prepare() -> None:
        model = None
        try:
            with contextlib.suppress(Exception):
                import elt.forecast.run  # noqa: F401
                from elt.forecast.store import load_latest

                model = load_latest(db)
        finally:
            loaded.set_result(model)

    threading.Thread(target=_prepare, name="elt-forecast-import", daemon=True).start()
    return loaded


def forecast_step(ctx: StepContext) -> StepOutcome:
    """Write the next two hours' CO and PM2.5 forecasts (``elt forecast predict``, training when due), then
    build the models that read them (even when forecasting failed: they also carry the observations)."""
    missing = _missing_forecast_modules()
    if missing:
        raise StepSkipped(
            f"the forecast extra is not installed (missing {', '.join(missing)}): "
            'pip install "airqino-elt[forecast]"'
        )
    from elt.forecast.run import run_forecast

    try:
        parsed = ctx.forecast_model.result() if ctx.forecast_model is not None else None
        result = run_forecast(ctx.project, ctx.db, run_id=ctx.run_id, now=ctx.window.end, parsed=parsed)
        failpoint("forecast:written")  # crash tests: forecasts written; their changes and marts not yet
        _record_forecast_changes(ctx, result)
    finally:
        marts = _refresh_forecast_marts(ctx)
    outcome = _outcome_of(result)
    outcome.counts["forecast_marts"] = marts.counts
    if marts.status == "failed" and outcome.status == "ok":
        outcome.status, outcome.error = "failed", f"forecast marts ({FORECAST_MARTS}): {marts.error}"
    return outcome


def _refresh_forecast_marts(ctx: StepContext) -> StepOutcome:
    """Bring the models that read the forecasts up to date with the ones just written, then audit them.

    The transform step runs before this one (and leaves these models to it when both run in one invocation):
    built there, the marts (and the dashboard's "what comes next") would show the previous run's forecasts.
    """
    from elt.models.changes import read_changes
    from elt.transform.task import record_full_pass, run_tests, run_transform

    built = _outcome_of(run_transform(ctx.project, ctx.db, select=[FORECAST_MARTS], run_id=ctx.run_id,
                                      write_artifacts=False, models=ctx.models))  # fmt: skip
    if built.status == "failed":
        return built
    changes = None if ctx.full_test_pass else read_changes(ctx.db, ctx.run_id)  # the test step's kind of pass
    tested = _outcome_of(run_tests(ctx.project, ctx.db, select=[FORECAST_MARTS], run_id=ctx.run_id,
                                   now=ctx.window.end, changes=changes, write_artifacts=False,
                                   models=ctx.models))  # fmt: skip
    if ctx.full_test_pass:  # the test step's full pass left these tests out: with them, everything has run
        record_full_pass(ctx.db, datetime.now(timezone.utc))
    return StepOutcome(tested.status, {"models": built.counts, "tests": tested.counts}, tested.error)


def _record_forecast_changes(ctx: StepContext, result: Any) -> None:
    """Add the forecasts this run wrote to its change records (publish copies only those)."""
    from elt.models.changes import RunChanges, record_changes

    predict = getattr(result, "predict", None)
    if predict is None or not predict.forecasts:
        return
    oldest: dict[tuple[str, str], Any] = {}
    for doc in predict.forecasts:
        key = (doc["station_id"], doc["pollutant"])
        oldest[key] = min(oldest.get(key, doc["issued_at"]), doc["issued_at"])
    changes = RunChanges(ctx.run_id)
    changes.add_scopes(FORECASTS_COLLECTION, [{"station_id": s, "pollutant": p, "issued_at": {"$gte": t}}
                                     for (s, p), t in sorted(oldest.items())])  # fmt: skip
    record_changes(ctx.db, changes)


def publish_step(ctx: StepContext) -> StepOutcome:
    """Copy the marts to PostgreSQL (``elt publish``) when ``SERVING_DSN`` is configured."""
    if ctx.project.target.serving_dsn is None:
        raise StepSkipped(
            "no SERVING_DSN configured (set it to publish the marts to PostgreSQL for Superset)"
        )
    if importlib.util.find_spec("psycopg") is None:
        raise StepSkipped('psycopg is not installed: pip install "airqino-elt[publish]"')
    from elt.models.changes import has_record, read_changes
    from elt.publish import publish_marts

    # what this run changed (its transform and forecast recorded it); without a record, or after a killed run
    # (what it wrote may be in no record, or in one no publish read), everything: unchanged rows are not rewritten
    changes = (
        read_changes(ctx.db, ctx.run_id) if has_record(ctx.db, ctx.run_id) and not ctx.after_crash else None
    )
    result = publish_marts(ctx.project, ctx.db, changes=changes)
    summary = result.to_dict()
    return StepOutcome("ok", {"rows_written": summary["rows_written"], "tables": len(summary["tables"]),
                              "skipped_tables": len(summary["skipped"]),
                              "unchanged_tables": len(summary["unchanged"])})  # fmt: skip


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
