"""kill -9 of ``elt transform`` at random points, then a rerun: the models equal a clean, uninterrupted reference.

Each trial loads a 10-day window, kills the first transform (full builds) and reruns it; every other trial then
moves the API one hour on with three days of history rewritten, loads, kills the incremental transform and
reruns it. Kill points mix a random time within the reference transform's duration with moments observed in
the database: the first staging document, half of the staging documents, the first daily document, the first
model recording its state (between two models).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from elt.simulator import AirQinoSimulator
from tests.faults.conftest import SEED, TRIALS
from tests.faults.helpers import (
    FaultProject,
    KillOutcome,
    assert_same_database,
    client_for,
    database_digest,
    kill_at,
)
from tests.simulator_fixtures import SIMULATOR_NOW

#: A short window keeps a full build of the staging model to a few seconds on SecantusDB.
WINDOW_DAYS = 10
STRATEGIES = ("random_time", "first_stg", "half_stg", "first_daily", "state_written")


def _transform_available() -> bool:
    from elt.cli import main

    return "transform" in main.commands


pytestmark = pytest.mark.skipif(
    not _transform_available(), reason="elt transform is not in this checkout yet"
)


def rewrite_recent_history(rows: list[dict[str, Any]], now: Any) -> list[dict[str, Any]]:
    """The API's server-side revision: PM2.5 and CO of the last three days change."""
    limit = (now - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    changed = []
    for row in rows:
        if row["timestamp"] >= limit:
            row = {
                **row,
                "PM2.5": round(float(row.get("PM2.5", 0)) + 2.5, 5),
                "CO": round(float(row.get("CO", 0)) + 0.1, 5),
            }
        changed.append(row)
    return changed


def set_phase(sim: AirQinoSimulator, phase: str) -> None:
    """ "initial": the clock at SIMULATOR_NOW, no revision; "update": one hour later, three days rewritten."""
    sim.clear_revisions()
    if phase == "initial":
        sim.set_now(SIMULATOR_NOW)
    else:
        sim.set_now(SIMULATOR_NOW + timedelta(hours=1))
        for station_id in sim.stations:
            sim.revise_history(station_id, rewrite_recent_history)


@pytest.fixture(scope="module")
def reference(fault_project_factory: Callable[..., FaultProject], fault_simulator: AirQinoSimulator,
              mongo_server_uri: str) -> dict[str, Any]:  # fmt: skip
    """Digests after uninterrupted load + transform, initial and update phases, and the transform durations."""
    project = fault_project_factory("transform_ref")
    db = client_for(mongo_server_uri)[project.database]
    result: dict[str, Any] = {}
    for phase in ("initial", "update"):
        set_phase(fault_simulator, phase)
        assert project.run("load").returncode == 0
        started = time.monotonic()
        done = project.run("transform")
        assert done.returncode == 0, done.stderr
        result[f"{phase}_seconds"] = time.monotonic() - started
        result[phase] = database_digest(db)
        result[f"{phase}_stg"] = db.stg_airqino_hourly.estimated_document_count()
    assert result["update"] != result["initial"]
    return result


@pytest.fixture(scope="module")
def kills() -> list[KillOutcome]:
    """Where every kill of the module landed."""
    return []


def _condition(strategy: str, db: Any, expected_stg: int) -> Callable[[], bool] | None:
    stg_before = db.stg_airqino_hourly.estimated_document_count()
    daily_before = db.daily_sensor_averages.estimated_document_count()
    runs_before = sorted(str(d.get("last_run_id")) for d in db.elt_state.find({}, {"last_run_id": 1}))
    if strategy == "first_stg":
        return lambda: db.stg_airqino_hourly.estimated_document_count() > stg_before
    if strategy == "half_stg":
        return lambda: db.stg_airqino_hourly.estimated_document_count() >= stg_before + expected_stg // 2
    if strategy == "first_daily":
        return lambda: db.daily_sensor_averages.estimated_document_count() > daily_before
    if strategy == "state_written":
        return lambda: (
            sorted(str(d.get("last_run_id")) for d in db.elt_state.find({}, {"last_run_id": 1}))
            != runs_before
        )
    return None


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_during_transform_then_rerun_equals_reference(
    trial: int,
    reference: dict[str, Any],
    kills: list[KillOutcome],
    fault_project_factory: Callable[..., FaultProject],
    fault_simulator: AirQinoSimulator,
    mongo_server_uri: str,
) -> None:
    rng = random.Random(f"{SEED}:transform:{trial}")
    project = fault_project_factory(f"transform_kill{trial}")
    db = client_for(mongo_server_uri)[project.database]
    for phase in ("initial", "update") if trial % 2 else ("initial",):
        set_phase(fault_simulator, phase)
        assert project.run("load").returncode == 0
        if phase == "update":  # counts hardly move in an incremental run: kill on time or on state
            strategy = rng.choice(["random_time", "state_written"])
        else:
            strategy = STRATEGIES[trial % len(STRATEGIES)]
        delay = rng.uniform(0.05, reference[f"{phase}_seconds"])
        expected = reference[f"{phase}_stg"] - db.stg_airqino_hourly.estimated_document_count()
        outcome = kill_at(project.start("transform"), strategy, delay, _condition(strategy, db, expected))
        kills.append(outcome)
        rerun = project.run("transform")
        context = f"trial {trial} (seed {SEED}) phase {phase}: {outcome}"
        assert rerun.returncode == 0, f"{context}: the rerun failed:\n{rerun.stderr[-2000:]}"
        assert_same_database(database_digest(db), reference[phase], context)


def test_most_kills_landed_while_the_transform_was_running(kills: list[KillOutcome]) -> None:
    if not kills:
        pytest.skip("no kill trial ran in this session (deselected)")
    killed = [k for k in kills if k.killed]
    assert len(killed) >= 0.8 * len(kills), f"too many transforms finished before their kill: {kills}"
