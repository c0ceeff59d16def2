"""One ``elt run``: take the lease, resolve the window, run the steps in order, record everything, alert.

The same entry point serves the CLI, the Airflow DAG (``steps=["load"]`` with the data interval and a shared
``run_id``), the docker compose scheduler and the tests. Exit codes: 0 success, 1 a step failed, 3 busy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.database import Database

from elt.config import Project
from elt.errors import EXIT_FAILED, EXIT_OK, ConfigError, EltError
from elt.failpoint import failpoint
from elt.logs import redact
from elt.models.project import ModelProject
from elt.models.shards import Shard
from elt.run import STEP_NAMES
from elt.run.lock import RUN_LEASE, Lease
from elt.run.runlog import RunLog, ShardRunLog, mark_abandoned, new_run_id
from elt.run.shards import check_main_lease, check_shard_steps
from elt.run.steps import (
    BLOCKS,
    STEPS,
    StepContext,
    StepFunction,
    StepOutcome,
    StepSkipped,
    start_forecast_import,
)
from elt.run.window import RunWindow, resolve_window
from elt.settings import settings

log = logging.getLogger(__name__)


def lease_ttl_s() -> float:
    """Lease time-to-live: ``ELT_RUN_LEASE_TTL_S`` or 300 s (a vanished host blocks runs at most this long)."""
    return settings().run_lease_ttl_s


@dataclass
class RunResult:
    """What a run did: its record (as stored in ``elt_runs``), its window and its exit code."""

    run_id: str
    window: RunWindow
    record: dict[str, Any]
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return self.record.get("status") == "success"

    @property
    def exit_code(self) -> int:
        """0 when every step succeeded or was skipped, 1 when one failed."""
        return EXIT_OK if self.ok else EXIT_FAILED

    def step(self, name: str) -> dict[str, Any] | None:
        """The record of step ``name``, if it ran."""
        return next((s for s in self.record.get("steps", []) if s["name"] == name), None)


def select_steps(names: Sequence[str] | None) -> list[str]:
    """The steps to run, in run order; a ConfigError naming the known steps for an unknown one."""
    if not names:
        return list(STEP_NAMES)
    unknown = [n for n in names if n not in STEP_NAMES]
    if unknown:
        raise ConfigError(f"unknown step {', '.join(unknown)}: choose from {', '.join(STEP_NAMES)}")
    return [n for n in STEP_NAMES if n in names]


class RunTask:
    """Run ``steps`` over a window under the run lease, recording the run in ``elt_runs``."""

    def __init__(
        self,
        project: Project,
        db: Database,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        steps: Sequence[str] | None = None,
        run_id: str | None = None,
        lookback_hours: float | None = None,
        trigger: str = "cli",
        demo: bool = False,
        alerts: bool = True,
        step_functions: dict[str, StepFunction] | None = None,
        now: datetime | None = None,
        full_tests: bool = False,
        shard: Shard | None = None,
        after_shards: bool = False,
    ) -> None:
        self.project = project
        self.db = db
        self.start, self.end = start, end
        self.steps = select_steps(steps)
        self.run_id = run_id or new_run_id()
        self.lookback_hours = lookback_hours
        self.trigger = trigger
        self.demo = demo
        self.alerts = alerts
        self.step_functions = step_functions or STEPS
        self.now = now
        self.full_tests = full_tests
        #: ``--shard i/N``: only this shard's stations, for the load/transform steps (see elt.models.shards).
        self.shard = shard
        #: ``--after-shards``: the shards of this run id did load and the per-station models.
        self.after_shards = after_shards
        check_shard_steps(steps or (), shard, after_shards)

    def run(self) -> RunResult:
        """Take the lease (``RunLockedError``, exit 3, if another run holds it), run, record, release, alert.

        The whole project validates first (``ModelError``, exit 2): nothing is written for an invalid project.
        """
        from elt.models import load_models

        models = load_models(self.project)
        name = RUN_LEASE
        if self.shard is not None:  # one lease per shard: shards run in parallel, never beside a whole run
            check_main_lease(self.db, self.run_id)
            name = f"{RUN_LEASE}:shard-{self.shard.slug}"
        lease = Lease(self.db, name=name, run_id=self.run_id, ttl_s=lease_ttl_s())
        with lease:
            recovered = mark_abandoned(self.db, self.run_id) if self.shard is None else 0
            window = resolve_window(self.db, self.start, self.end, self.lookback_hours, self.now)
            if self.shard is not None:
                runlog: RunLog = ShardRunLog(self.db, self.run_id, self.shard.label, self.shard.slug,
                                             trigger=self.trigger, demo=self.demo)  # fmt: skip
            else:
                runlog = RunLog(self.db, self.run_id, trigger=self.trigger, demo=self.demo)
            runlog.start(window.as_doc(), recovered)
            log.info("run %s: %s over %s", self.run_id, " -> ".join(self.steps), window.describe())
            error = self._run_steps(runlog, window, lease, models)
            record = runlog.finish("failed" if error else "success", error)
        result = RunResult(self.run_id, window, record)
        if self.alerts and not self.demo and self.shard is None:
            result.alerts = self._alert(record)
        return result

    def _run_steps(self, runlog: RunLog, window: RunWindow, lease: Lease, models: ModelProject) -> str | None:
        ctx = StepContext(self.project, self.db, window, self.run_id, self.demo, full_tests=self.full_tests,
                          shard=self.shard, after_shards=self.after_shards, steps=tuple(self.steps),
                          models=models, after_crash=runlog.after_crash)  # fmt: skip
        ctx.forecast_model = start_forecast_import(tuple(self.steps), self.db)
        failures: list[str] = []
        blocked: dict[str, str] = {}
        for name in self.steps:
            if lease.lost.is_set():
                failures.append(f"{name}: the run lease was taken over by another run; stopped before {name}")
                break
            if name in blocked:
                runlog.step_skipped(name, f"not run: step {blocked[name]} failed")
                continue
            outcome, reason = self._run_step(name, ctx, runlog)
            if outcome is not None and outcome.status == "failed":
                failures.append(f"{name}: {outcome.error}")
                for later in BLOCKS.get(name, ()):
                    blocked.setdefault(later, name)
            elif reason:
                log.info("step %s skipped: %s", name, reason)
        return redact("; ".join(failures))[:2000] if failures else None

    def _run_step(self, name: str, ctx: StepContext, runlog: RunLog) -> tuple[StepOutcome | None, str | None]:
        step = runlog.step_started(name)
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            outcome = self.step_functions[name](ctx)
            failpoint(f"run:{name}:done")  # crash tests: the step's work done, its outcome not yet recorded
        except StepSkipped as skip:
            runlog.step_finished(step, "skipped", reason=str(skip), cpu_s=time.process_time() - cpu_started)
            return None, str(skip)
        except EltError as exc:
            outcome = StepOutcome("failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one step is that step's failure, recorded; not a crash
            log.exception("step %s: unexpected error", name)
            outcome = StepOutcome("failed", error=f"unexpected {type(exc).__name__}: {exc}")
        runlog.step_finished(step, outcome.status, counts=outcome.counts, error=outcome.error,
                             cpu_s=time.process_time() - cpu_started)  # fmt: skip
        seconds = time.perf_counter() - started
        if outcome.status == "failed":
            log.error("step %s failed after %.1f s: %s", name, seconds, redact(str(outcome.error))[:500])
        else:
            log.info("step %s ok in %.1f s %s", name, seconds, _brief(outcome.counts))
        return outcome, None

    def _alert(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Failed run -> one alert; stale stations -> one alert when due. Never fails the run."""
        from elt.run.alerts import (
            alert_missing_forecasts,
            alert_stale_stations,
            run_failed_payload,
            send_alert,
            webhook_url,
        )
        from elt.run.status import build_status

        if not webhook_url():
            return []
        deliveries = []
        try:
            if record.get("status") == "failed":
                payload = run_failed_payload(self.project.config.name, self.db.name, record)
                deliveries.append(send_alert(payload).as_dict())
            report = build_status(self.project, self.db, now=self.now)
            stale = [
                {"station_id": s.station_id, "name": s.name, "last_ts": s.last_ts, "age_hours": s.age_hours,
                 "stale_after_hours": s.stale_after_hours}
                for s in report.stale_stations
            ]  # fmt: skip
            delivery = alert_stale_stations(self.db, self.project.config.name, stale) if stale else None
            if delivery is not None:
                deliveries.append(delivery.as_dict())
            if report.forecast_warnings:
                missing = alert_missing_forecasts(
                    self.db, self.project.config.name, report.forecast_warnings, report.now
                )
                if missing is not None:
                    deliveries.append(missing.as_dict())
        except Exception as exc:  # noqa: BLE001 - alerting is best effort; the run's own status stands
            log.error("alerting failed: %s", redact(str(exc))[:300])
        return deliveries


def _brief(counts: dict[str, Any]) -> str:
    shown = {k: v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return "(" + ", ".join(f"{k} {v}" for k, v in shown.items()) + ")" if shown else ""
