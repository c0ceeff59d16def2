"""kill -9 of ``elt load``, then a rerun: the database equals a clean, uninterrupted load. Two families:

**API trials** (``ELT_FAULT_TRIALS``, default 10): each kills two loads from the simulator on a fresh database:
the initial load of a 30-day window (inserts), and on every other trial a second load one hour later after the
API rewrote ten days of history (history entries, guarded replaces, provisional -> final). Kill points mix a
random time within the reference load's duration with moments observed in the database: the audit row
appearing, the first raw document, half of the documents, the first history entry (between the history write
and the raw replace it belongs to). Compared: ``database_digest`` (every collection and index).

**Archive trials** (2 stations x 1 year, ``--from-dir``, generated here): A = a year ending 2024-09-09 10:00,
B = a year ending three days later in which the API rewrote ~5 % of the hours. Each of three pairs kills the
load of A on a fresh database (inserts only) and reruns it, then (in the first two pairs) kills the load of B
(history upserts before the raw replaces they belong to) and reruns that: five kill points, each chosen from
what the database shows (after a random share of the rows, or right after the first history entry), so the
process really dies mid-write. Compared: every field of ``raw_airqino_hourly``, ``raw_airqino_history`` and
``raw_airqino_rejects`` except the write metadata ``_loaded_at``/``_batch_id``/``_replaced_by_batch``/
``_rejected_at``; ``load_batches`` is left out because it records every run, including the killed one (its
audit row stays ``running``).

``ELT_FAULT_SEED`` seeds both families' kill points (printed on failure to reproduce a trial). The archive
trials run first, so the API trials' databases (dropped when the module ends) do not sit beside them.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

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
from tests.load_helpers import (
    ARCHIVE_END,
    REPO_ROOT,
    VOLATILE_FIELDS,
    collection_digests,
    write_archive,
)
from tests.simulator_fixtures import SIMULATOR_NOW

# --- archive trials: a year of two stations from --from-dir ----------------------------------------------------

#: Each pair kills the first load once and (except the last) the second load once: 5 kill points.
PAIRS = 3
#: How long one year-long load may take before the trial gives up.
ARCHIVE_TIMEOUT_S = 240


def elt_load(project_dir: Path, database: str, archive: Path) -> subprocess.Popen:
    """Start ``python -m elt load --from-dir archive`` on ``database``."""
    env = {**os.environ, "ELT_DATABASE": database}
    command = [sys.executable, "-m", "elt", "--project-dir", str(project_dir), "-q", "load", "--from-dir",
               str(archive)]  # fmt: skip
    return subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def load_to_end(project_dir: Path, database: str, archive: Path) -> None:
    """Run one archive load to its end; it must succeed."""
    process = elt_load(project_dir, database, archive)
    _, stderr = process.communicate(timeout=ARCHIVE_TIMEOUT_S)
    assert process.returncode == 0, stderr


def kill_when_reaches(process: subprocess.Popen, collection: Any, threshold: float, point: str) -> int:
    """SIGKILL ``process`` once ``collection`` holds ``threshold`` documents; what landed (-1 if it finished)."""
    outcome = kill_at(
        process, point, 0.0, lambda: collection.estimated_document_count() >= threshold, ARCHIVE_TIMEOUT_S
    )
    return collection.estimated_document_count() if outcome.killed else -1


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Archive A (a year) and archive B (three days later, ~5 % of the hours revised)."""
    root = tmp_path_factory.mktemp("kill-archives")
    first = write_archive(root / "a", ARCHIVE_END)
    second = write_archive(root / "b", ARCHIVE_END + timedelta(hours=72), revise=0.05)
    return first, second


def test_kill_9_during_archive_load_then_rerun_equals_a_clean_load(
    project_dir: Path, mongo_client: MongoClient, archives: tuple[Path, Path]
) -> None:
    first, second = archives
    rng = random.Random(SEED)
    databases: list[str] = []

    def fresh_database() -> str:
        databases.append(f"elt_kill_{uuid.uuid4().hex[:10]}")
        return databases[-1]

    try:
        reference = fresh_database()
        load_to_end(project_dir, reference, first)
        after_first = collection_digests(mongo_client[reference], VOLATILE_FIELDS)
        n_first = mongo_client[reference].raw_airqino_hourly.count_documents({})
        load_to_end(project_dir, reference, second)
        after_second = collection_digests(mongo_client[reference], VOLATILE_FIELDS)
        n_second = mongo_client[reference].raw_airqino_hourly.count_documents({})
        n_history = mongo_client[reference].raw_airqino_history.count_documents({})
        assert n_first > 17_000 and n_second - n_first >= 140 and n_history > 700

        killed_mid_write = []
        for pair in range(PAIRS):
            database = fresh_database()
            db = mongo_client[database]
            raw, history = db.raw_airqino_hourly, db.raw_airqino_history

            share = rng.uniform(0.05, 0.95)
            point = f"pair {pair}, first load, after {share:.0%} of the rows"
            landed = kill_when_reaches(elt_load(project_dir, database, first), raw, share * n_first, point)
            killed_mid_write.append(0 < landed < n_first)
            print(f"kill -9 at {point}: {landed} raw rows landed")
            assert db.load_batches.count_documents({"status": "running"}) >= 1  # the killed station batches
            load_to_end(project_dir, database, first)
            assert collection_digests(db, VOLATILE_FIELDS) == after_first, point

            if pair == PAIRS - 1:
                break
            if pair == 0:
                point, threshold = f"pair {pair}, second load, right after the first history entry", 1
            else:
                share = rng.uniform(0.05, 0.9)
                point, threshold = (
                    f"pair {pair}, second load, after {share:.0%} of the history",
                    share * n_history,
                )
            landed = kill_when_reaches(elt_load(project_dir, database, second), history, threshold, point)
            killed_mid_write.append(0 < landed < n_history)
            print(f"kill -9 at {point}: {landed} history entries landed")
            load_to_end(project_dir, database, second)
            assert collection_digests(db, VOLATILE_FIELDS) == after_second, point
            mongo_client.drop_database(database)
        assert sum(killed_mid_write) >= 5, killed_mid_write
    finally:
        for name in databases:
            mongo_client.drop_database(name)


# --- API trials: a 30-day window from the simulator ---------------------------------------------------------

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
