"""kill -9 of ``elt load`` at random points, then a rerun: the database equals a clean, uninterrupted reference.

Each trial kills two loads on a fresh database: the initial load of a 30-day window (inserts), and on every
other trial a second load one hour later after the API rewrote ten days of history (history entries, guarded
replaces, provisional -> final). Kill points mix a random time within the reference load's duration with
moments observed in the database: the audit row appearing, the first raw document, half of the documents,
the first history entry (between the history write and the raw replace it belongs to).
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

STRATEGIES = ("random_time", "audit_row", "first_raw", "half_raw", "first_history", "random_time")


def rewrite_recent_history(rows: list[dict[str, Any]], now: Any) -> list[dict[str, Any]]:
    """The API's server-side revision: PM10 of the last ten days goes up by 1.5."""
    limit = (now - timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S")
    return [
        {**row, "PM10": round(row["PM10"] + 1.5, 5)} if row["timestamp"] >= limit and "PM10" in row else row
        for row in rows
    ]


def set_phase(sim: AirQinoSimulator, phase: str) -> None:
    """Phase "initial": the clock at SIMULATOR_NOW, no revision; "update": one hour later, history rewritten."""
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
    """Digests after an uninterrupted initial load and after the update load, and how long each took."""
    project = fault_project_factory("load_ref")
    db = client_for(mongo_server_uri)[project.database]
    result: dict[str, Any] = {}
    for phase in ("initial", "update"):
        set_phase(fault_simulator, phase)
        started = time.monotonic()
        done = project.run("load")
        assert done.returncode == 0, done.stderr
        result[f"{phase}_seconds"] = time.monotonic() - started
        result[phase] = database_digest(db)
        result[f"{phase}_raw"] = db.raw_airqino_hourly.estimated_document_count()
    assert result["update"]["raw_airqino_history"]["documents"].split(":")[0] != "0", (
        "the update changes nothing"
    )
    return result


def _condition(strategy: str, db: Any, expected_raw: int, raw_before: int) -> Callable[[], bool] | None:
    if strategy == "audit_row":  # a new audit row (a killed earlier load may have left one running)
        audits_before = db.load_batches.estimated_document_count()
        return lambda: db.load_batches.estimated_document_count() > audits_before
    if strategy == "first_raw":
        return lambda: db.raw_airqino_hourly.estimated_document_count() > raw_before
    if strategy == "half_raw":
        return lambda: db.raw_airqino_hourly.estimated_document_count() >= raw_before + expected_raw // 2
    if strategy == "first_history":
        return lambda: db.raw_airqino_history.estimated_document_count() > 0
    return None


@pytest.fixture(scope="module")
def kills() -> list[KillOutcome]:
    """Where every kill of the module landed."""
    return []


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_during_load_then_rerun_equals_reference(
    trial: int,
    reference: dict[str, Any],
    kills: list[KillOutcome],
    fault_project_factory: Callable[..., FaultProject],
    fault_simulator: AirQinoSimulator,
    mongo_server_uri: str,
) -> None:
    rng = random.Random(f"{SEED}:load:{trial}")
    project = fault_project_factory(f"load_kill{trial}")
    db = client_for(mongo_server_uri)[project.database]
    phases = ("initial", "update") if trial % 2 else ("initial",)
    for phase in phases:
        set_phase(fault_simulator, phase)
        if phase == "update":  # the initial state of the update phase is the completed initial load
            strategy = rng.choice(["random_time", "first_history", "audit_row"])
        else:
            strategy = STRATEGIES[trial % len(STRATEGIES)]
            strategy = "first_raw" if strategy == "first_history" else strategy
        delay = rng.uniform(0.05, reference[f"{phase}_seconds"])
        raw_before = db.raw_airqino_hourly.estimated_document_count()
        expected = reference[f"{phase}_raw"] - raw_before
        outcome = kill_at(
            project.start("load"), strategy, delay, _condition(strategy, db, expected, raw_before)
        )
        kills.append(outcome)
        rerun = project.run("load")
        context = f"trial {trial} (seed {SEED}) phase {phase}: {outcome}"
        assert rerun.returncode == 0, f"{context}: the rerun failed:\n{rerun.stderr[-2000:]}"
        assert_same_database(database_digest(db), reference[phase], context)


def test_most_kills_landed_while_the_load_was_running(kills: list[KillOutcome]) -> None:
    if not kills:
        pytest.skip("no kill trial ran in this session (deselected)")
    killed = [k for k in kills if k.killed]
    assert len(killed) >= 0.8 * len(kills), f"too many loads finished before their kill: {kills}"
    print("\n".join(str(k) for k in kills))
