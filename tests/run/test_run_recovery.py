"""``elt run`` as users run it (subprocesses against the simulator): overlap and kill -9 recovery.

- Two runs started together: one works, the other exits 3 with the documented message and changes nothing.
- A run killed with SIGKILL in the middle of a step leaves its lease and a ``running`` record behind; the next
  run takes the lease over at once (same host, dead pid), marks the old record ``aborted``, completes, and the
  marts equal those of an uninterrupted run (compared without ``_id``, ``_updated_at`` and ``_run_id``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from elt.failpoint import pause_marker
from elt.run.steps import STEPS as RUN_STEPS
from elt.simulator import AirQinoSimulator
from tests.conftest import REPO_ROOT
from tests.run.run_helpers import copy_database, mart_digest
from tests.simulator_fixtures import SIMULATOR_NOW

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1200)]

#: The first run's explicit window: 56 days of final hours, ending 6 hours before the simulator's clock; the
#: hourly runs after it use the default window (the last success minus 48 h, to now).
WINDOW_END = SIMULATOR_NOW.replace(minute=0) - timedelta(hours=6)
WINDOW_START = WINDOW_END - timedelta(days=56)
HOURLY = [sys.executable, "-m", "elt", "run", "--no-summary", "--no-alerts"]
STEPS = list(RUN_STEPS)  # in run order


def first_run_cmd(run_id: str, *extra: str) -> list[str]:
    """``elt run`` over the first run's explicit window."""
    return [*HOURLY, "--start", WINDOW_START.isoformat(), "--end", WINDOW_END.isoformat(), "--run-id", run_id,
            *extra]  # fmt: skip


@dataclass
class RecoveryWorld:
    """A project, a simulator, and the databases the tests create (dropped at the end)."""

    project: Path
    base_url: str
    mongo_uri: str
    client: MongoClient
    created: list[str] = field(default_factory=list)
    digests: dict[str, dict] = field(default_factory=dict)

    def env_for(self, label: str) -> tuple[dict[str, str], str]:
        """Environment of an ``elt`` subprocess writing to a new database."""
        database = f"elt_test_run_{label}_{uuid.uuid4().hex[:8]}"
        self.created.append(database)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRQINO_", "ELT_", "MONGO_URI"))}
        env.update(AIRQINO_BASE_URL=self.base_url, ELT_DATABASE=database, ELT_PROJECT_DIR=str(self.project),
                   MONGO_URI=self.mongo_uri)  # fmt: skip
        return env, database


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mongo_server_uri: str, mongo_client: MongoClient
          ) -> Iterator[RecoveryWorld]:  # fmt: skip
    """The two brief stations (seed 42, 60 days, clock frozen at SIMULATOR_NOW) and a project using them."""
    project = tmp_path_factory.mktemp("recovery") / "project"
    (project / "config").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "elt.yml", project / "config" / "elt.yml")
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump({"default_target": "test", "targets": {
        "test": {"database": "unused", "embedded_path": str(project / "unused-embedded")}}}))  # fmt: skip
    (project / "aggregations").symlink_to(REPO_ROOT / "aggregations")
    with AirQinoSimulator.generated(2, 42, now=SIMULATOR_NOW, window_days=60) as sim:
        world = RecoveryWorld(project, sim.base_url, mongo_server_uri, mongo_client)
        yield world
    for database in world.created:
        mongo_client.drop_database(database)


@pytest.fixture(scope="module")
def baseline(world: RecoveryWorld) -> dict[str, str]:
    """An uninterrupted first run and hourly run; a snapshot of the database between them (``template``)."""
    env, database = world.env_for("baseline")
    first = subprocess.run(first_run_cmd("run-first"), env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    world.digests["after_first"] = mart_digest(world.client, database)
    _, template = world.env_for("template")
    copy_database(world.client, database, template)
    hourly = subprocess.run([*HOURLY, "--run-id", "run-hourly"], env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert hourly.returncode == 0, hourly.stderr[-3000:]
    world.digests["after_hourly"] = mart_digest(world.client, database)
    return {"template": template}


def test_two_runs_started_together_one_works_the_other_exits_3(world: RecoveryWorld) -> None:
    env, database = world.env_for("overlap")
    steps = ["--step", "load", "--step", "transform"]
    procs = [subprocess.Popen(first_run_cmd(f"run-overlap-{i}", *steps), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 3], outputs
    busy_err = outputs[[p.returncode for p in procs].index(3)][1]
    assert "Error: another elt run is in progress (run run-overlap-" in busy_err
    assert "Nothing was done: retry later (exit code 3)" in busy_err
    runs = list(world.client[database].elt_runs.find({}))
    assert len(runs) == 1 and runs[0]["status"] == "success"  # the busy run recorded nothing
    assert world.client[database].elt_locks.count_documents({}) == 0


def _run_until_killed(cmd: list[str], env: dict[str, str], client: MongoClient, database: str, run_id: str,
                      step: str, delay_s: float, paused: Path | None = None) -> str | None:  # fmt: skip
    """Start ``cmd``, SIGKILL it ``delay_s`` after ``step`` starts (or, with ``paused``, once that failpoint
    marker exists: the process waits there); return the step it was in when killed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = client[database].elt_runs
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            current = (runs.find_one({"_id": run_id}, {"current_step": 1}) or {}).get("current_step")
            if paused.exists() if paused is not None else current == step:
                time.sleep(delay_s)
                break
            time.sleep(0.02)
        assert proc.poll() is None, (
            f"the run ended before step {step} was reached: {proc.stderr.read()[-2000:]}"
        )
        killed_in = (runs.find_one({"_id": run_id}) or {}).get("current_step")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert client[database].elt_locks.count_documents({}) == 1  # the dead run's lease is still there
    return killed_in


def _recover(cmd: list[str], env: dict[str, str], client: MongoClient, database: str, killed_id: str) -> None:
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "took over the run lease" in again.stderr
    killed = client[database].elt_runs.find_one({"_id": killed_id})
    assert killed["status"] == "aborted" and killed["recovered_by"] is not None
    assert client[database].elt_locks.count_documents({}) == 0


@pytest.mark.parametrize(
    ("step", "delay_s", "point"),
    [
        ("load", 0.0, None),
        ("transform", 0.5, None),
        # the test and forecast steps of two stations take well under a second: a delay raced the end of the
        # run, so they are held where a failpoint pauses them (``elt.failpoint``)
        ("test", 0.0, "run:test:done"),  # audited, the outcome not recorded
        ("forecast", 0.0, "forecast:written"),  # forecasts written; their changes and marts not yet
    ],
)
def test_after_kill_9_in_an_hourly_run_the_next_run_recovers_the_same_marts(
    world: RecoveryWorld,
    baseline: dict[str, str],
    step: str,
    delay_s: float,
    point: str | None,
    tmp_path: Path,
) -> None:
    env, database = world.env_for(f"kill_{step}")
    copy_database(world.client, baseline["template"], database)  # the state after the first run
    killed_id = f"run-killed-{step}"
    held = dict(env, ELT_FAILPOINT=point, ELT_FAILPOINT_DIR=str(tmp_path)) if point else env
    paused = pause_marker(tmp_path, point) if point else None
    killed_in = _run_until_killed([*HOURLY, "--run-id", killed_id], held, world.client, database, killed_id,
                                  step, delay_s, paused=paused)  # fmt: skip
    # a short step (an hourly load of two stations) can end before the kill lands: any later step is a kill
    # point too, as long as the run had not finished
    assert killed_in == step if point else killed_in in STEPS[STEPS.index(step) :], killed_in
    _recover([*HOURLY, "--run-id", f"run-recover-{step}"], env, world.client, database, killed_id)
    assert mart_digest(world.client, database) == world.digests["after_hourly"]


def test_after_kill_9_in_the_first_runs_transform_the_next_run_recovers_the_same_marts(
    world: RecoveryWorld, baseline: dict[str, str], tmp_path: Path
) -> None:
    env, database = world.env_for("kill_first")
    killed_id = "run-killed-first"
    # killed where a failpoint holds it: staging merged over the whole history, the marts not built yet (a
    # delay after the step started raced a fast machine's transform); the recovery also retrains from scratch
    point = "stg_airqino_hourly:full:merged"
    env = dict(env, ELT_FAILPOINT=point, ELT_FAILPOINT_DIR=str(tmp_path))
    assert _run_until_killed(first_run_cmd(killed_id), env, world.client, database, killed_id, "transform",
                             0.0, paused=pause_marker(tmp_path, point)) == "transform"  # fmt: skip
    env.pop("ELT_FAILPOINT")
    _recover(first_run_cmd("run-recover-first"), env, world.client, database, killed_id)
    assert mart_digest(world.client, database) == world.digests["after_first"]
