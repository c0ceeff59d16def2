"""SIGKILL of the embedded database SERVER inside table swaps and inside incremental ``$merge``s, restart, rerun.

The embedded SecantusDB daemon (the one ``elt`` starts itself, ``--sync-on-commit``) is killed at 8 points of
full rebuilds ("table swaps": merge of this run's result, key check, delete of earlier runs' documents, state)
and at 8 points of an hourly incremental transform. The next plain ``elt transform`` (no ``--full-refresh``)
starts a new server on the same data directory and must leave every collection equal to a clean build of the
same data, with unique keys, while the killed transform must never report success.

Kill points are either a named failpoint (``elt.failpoint``: the ``elt`` process pauses there, the test kills
the server, then lets the process go on and fail) or a condition polled on the database while the server
works (the first / half of the new documents of a ``$merge``), or a random time.

The full rebuilds come from a changed definition (every model gains a ``swap_version`` field and staging drops
the 03:00 UTC hour), so old and new contents differ in every document and in their set of keys: a mix of
the two, a lost document or a leftover old one all show as a divergence.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import MongoClient

from elt.simulator import AirQinoSimulator
from elt.store import read_embedded_state, stop_embedded_server
from tests.faults.conftest import SEED
from tests.faults.helpers import FaultProject, assert_same_database, client_for, database_digest
from tests.faults.test_kill_transform import set_phase
from tests.run.run_helpers import copy_database

pytest.importorskip("secantus", reason="the embedded server tests need SecantusDB")

#: Four days of hourly data per station keep one full build to a few seconds.
WINDOW_DAYS = 4
MODELS = ("stg_airqino_hourly", "daily_sensor_averages", "station_day_last_hours", "station_freshness",
          "forecast_verification")  # fmt: skip

#: (name, kind, target): kind "failpoint" pauses at an elt.failpoint, "first"/"half" polls the new documents
#: of a model, "time" kills after a random delay.
SWAP_POINTS = [
    ("stg_start", "failpoint", "stg_airqino_hourly:full:start"),
    ("stg_first_doc", "first", "stg_airqino_hourly"),
    ("stg_half", "half", "stg_airqino_hourly"),
    ("stg_merged", "failpoint", "stg_airqino_hourly:full:merged"),
    ("stg_verified", "failpoint", "stg_airqino_hourly:full:verified"),
    ("stg_deleted", "failpoint", "stg_airqino_hourly:full:deleted"),
    ("daily_half", "half", "daily_sensor_averages"),
    ("freshness_merged", "failpoint", "station_freshness:full:merged"),
]
MERGE_POINTS = [
    ("stg_first_doc", "first", "stg_airqino_hourly"),
    ("stg_half", "half", "stg_airqino_hourly"),
    ("stg_merged", "failpoint", "stg_airqino_hourly:incremental:merged"),
    ("stg_verified", "failpoint", "stg_airqino_hourly:incremental:verified"),
    ("daily_first_doc", "first", "daily_sensor_averages"),
    ("daily_merged", "failpoint", "daily_sensor_averages:incremental:merged"),
    ("random_time_1", "time", ""),
    ("random_time_2", "time", ""),
]


@dataclass
class Landing:
    """Where one kill landed."""

    family: str
    point: str
    inside: bool
    """The server died while this transform was connected to it (it then failed or was killed too)."""
    killed_exit: int | None


class Embedded:
    """Two projects (original models, changed models) sharing one embedded server directory."""

    def __init__(self, original: FaultProject, changed: FaultProject, data_dir: Path) -> None:
        self.original, self.changed, self.data_dir = original, changed, data_dir

    def uri(self) -> str:
        state = read_embedded_state(self.data_dir)
        assert state is not None, "the embedded server is not running"
        return str(state["uri"])

    def pid(self) -> int:
        state = read_embedded_state(self.data_dir)
        assert state is not None, "the embedded server is not running"
        return int(state["pid"])

    @contextlib.contextmanager
    def client(self) -> Iterator[MongoClient]:
        client = client_for(self.uri())
        try:
            yield client
        finally:
            client.close()

    def run(self, project: FaultProject, database: str, *args: str) -> subprocess.CompletedProcess:
        return project.run(*args, env={"ELT_DATABASE": database})

    def start(self, project: FaultProject, database: str, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(project.command(*args), env={**project.env, "ELT_DATABASE": database, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _share_server(project: FaultProject, data_dir: Path) -> None:
    profiles_path = project.directory / "config" / "profiles.yml"
    profiles = yaml.safe_load(profiles_path.read_text())
    profiles["targets"]["faults"]["embedded_path"] = str(data_dir)
    profiles_path.write_text(yaml.safe_dump(profiles))


def _change_models(project: FaultProject) -> None:
    """Every model gets ``swap_version: 2``; staging also drops the 03:00 UTC hour (keys disappear)."""
    for path in sorted((project.directory / "aggregations").rglob("*.yml")):
        spec = yaml.safe_load(path.read_text())
        if not isinstance(spec, dict) or "pipeline" not in spec:
            continue
        if spec["name"] == "stg_airqino_hourly":
            spec["pipeline"].append({"$match": {"$expr": {"$ne": [{"$hour": "$ts"}, 3]}}})
        spec["pipeline"].append({"$addFields": {"swap_version": 2}})
        path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def embedded(fault_project_factory: Callable[..., FaultProject], tmp_path_factory: pytest.TempPathFactory,
             fault_simulator: AirQinoSimulator) -> Iterator[Embedded]:  # fmt: skip
    data_dir = tmp_path_factory.mktemp("shared_server") / "mongo"
    original = fault_project_factory("swap_original", mongo_uri=None)
    changed = fault_project_factory("swap_changed", mongo_uri=None)
    for project in (original, changed):
        _share_server(project, data_dir)
    _change_models(changed)
    setup = Embedded(original, changed, data_dir)
    try:
        assert original.run("server", "start").returncode == 0
        yield setup
    finally:
        stop_embedded_server(data_dir)


@pytest.fixture(scope="module")
def bases(embedded: Embedded, fault_simulator: AirQinoSimulator) -> dict[str, Any]:
    """Databases the trials copy, and the digests of clean builds they are compared with."""
    result: dict[str, Any] = {}
    set_phase(fault_simulator, "initial")
    assert embedded.run(embedded.original, "base_raw", "load").returncode == 0
    with embedded.client() as client:
        copy_database(client, "base_raw", "base_built")
        copy_database(client, "base_raw", "ref_changed")
    done = embedded.run(embedded.original, "base_built", "transform")
    assert done.returncode == 0, done.stderr[-2000:]
    started = time.monotonic()
    done = embedded.run(embedded.changed, "ref_changed", "transform")  # a clean build of the changed models
    assert done.returncode == 0, done.stderr[-2000:]
    result["changed_seconds"] = time.monotonic() - started
    set_phase(fault_simulator, "update")
    with embedded.client() as client:
        copy_database(client, "base_built", "base_update")
    assert embedded.run(embedded.original, "base_update", "load").returncode == 0
    with embedded.client() as client:
        copy_database(client, "base_update", "ref_update")
        copy_database(client, "base_update", "timing_update")
    done = embedded.run(embedded.original, "ref_update", "transform", "--full-refresh")
    assert done.returncode == 0, done.stderr[-2000:]
    started = time.monotonic()
    done = embedded.run(embedded.original, "timing_update", "transform")  # the uninterrupted incremental run
    assert done.returncode == 0, done.stderr[-2000:]
    result["update_seconds"] = time.monotonic() - started
    with embedded.client() as client:
        result["changed"] = database_digest(client["ref_changed"])
        result["update"] = database_digest(client["ref_update"])
        assert database_digest(client["timing_update"]) == result["update"], "incremental != full build"
        assert database_digest(client["base_built"]) != result["changed"]
        result["counts"] = {
            (db, m): client[db][m].estimated_document_count()
            for db in ("ref_changed", "ref_update") for m in MODELS
        }  # fmt: skip
    return result


@pytest.fixture(scope="module")
def landings() -> list[Landing]:
    """Where every kill of the module landed."""
    return []


def _condition(client: MongoClient, database: str, kind: str, model: str, family: str,
               counts: dict[Any, int]) -> Callable[[], bool]:  # fmt: skip
    """A poll on the server: the first / half of the documents the killed run writes into ``model``."""
    collection = client[database][model]
    if family == "swap":
        query: dict[str, Any] = {"swap_version": 2}
        expected = counts[("ref_changed", model)]
    else:
        old_runs = collection.distinct("_run_id")
        query = {"_run_id": {"$nin": old_runs}}
        expected = 40  # documents an hourly run rewrites here: 3 revised days of 2 stations
    threshold = 1 if kind == "first" else max(2, expected // 2)
    return lambda: collection.count_documents(query) >= threshold


def _kill_server(embedded: Embedded) -> None:
    os.kill(embedded.pid(), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while read_embedded_state(embedded.data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def _duplicate_keys(client: MongoClient, database: str) -> dict[str, int]:
    keys = {"stg_airqino_hourly": ("station_id", "ts"), "daily_sensor_averages": ("station_id", "day"),
            "station_day_last_hours": ("station_id", "day"), "station_freshness": ("station_id", "pollutant"),
            "forecast_verification": ("station_id", "pollutant", "horizon_h", "day")}  # fmt: skip
    found = {}
    for model, fields in keys.items():
        seen: set[tuple] = set()
        dups = 0
        for doc in client[database][model].find({}, {f: 1 for f in fields}):
            key = tuple(repr(doc.get(f)) for f in fields)
            dups += key in seen
            seen.add(key)
        if dups:
            found[model] = dups
    return found


def _trial(embedded: Embedded, bases: dict[str, Any], landings: list[Landing], family: str,
           point: tuple[str, str, str], index: int, tmp_path: Path) -> None:  # fmt: skip
    name, kind, target = point
    database = f"trial_{family}_{index}"
    project = embedded.changed if family == "swap" else embedded.original
    with embedded.client() as client:
        client.drop_database(database)
        copy_database(client, "base_built" if family == "swap" else "base_update", database)
    env = {"ELT_FAILPOINT": target, "ELT_FAILPOINT_DIR": str(tmp_path)} if kind == "failpoint" else {}
    poll = client_for(embedded.uri())
    # a random time is counted from the run's first write (so the run is connected to the server it loses)
    condition = (
        None
        if kind == "failpoint"
        else _condition(
            poll,
            database,
            "first" if kind == "time" else kind,
            target or "stg_airqino_hourly",
            family,
            bases["counts"],
        )
    )
    rng = random.Random(f"{SEED}:{family}:{index}")
    seconds = bases["changed_seconds" if family == "swap" else "update_seconds"]
    killed = embedded.start(project, database, "transform", **env)
    deadline = time.monotonic() + 120
    marker = tmp_path / f"{target}.paused"
    while killed.poll() is None and time.monotonic() < deadline:
        if kind == "failpoint" and marker.exists():
            break
        if condition is not None:
            with contextlib.suppress(Exception):
                if condition():
                    if kind == "time":
                        condition, deadline = None, time.monotonic() + rng.uniform(0.0, seconds / 4)
                        continue
                    break
        time.sleep(0.005)
    running = killed.poll() is None
    _kill_server(embedded)
    poll.close()
    marker.unlink(missing_ok=True)  # let the paused process go on against the dead server
    context = f"{family} kill at {name} (seed {SEED})"
    try:  # it fails fast on the lost connection, or waits on server selection: then it dies with the machine
        exit_code: int | None = killed.wait(5)
    except subprocess.TimeoutExpired:
        killed.kill()
        killed.wait()
        exit_code = None
    landings.append(Landing(family, name, running and exit_code != 0, exit_code))
    if (
        running and exit_code == 0
    ):  # only possible if it connected after the kill, to a server it started itself
        assert read_embedded_state(embedded.data_dir) is not None, f"{context}: success reported, server dead"
        with embedded.client() as client:
            assert _duplicate_keys(client, database) == {}, f"{context}: success reported with duplicate keys"
            assert_same_database(database_digest(client[database]),
                                 bases["changed" if family == "swap" else "update"], f"{context}: success reported")  # fmt: skip
    rerun = embedded.run(project, database, "transform")  # starts a new server on the same directory
    assert rerun.returncode == 0, f"{context}: the rerun failed:\n{rerun.stderr[-2000:]}"
    with embedded.client() as client:
        assert _duplicate_keys(client, database) == {}, f"{context}: duplicate keys after a successful rerun"
        assert_same_database(database_digest(client[database]), bases["changed" if family == "swap" else "update"],
                             context)  # fmt: skip
        client.drop_database(database)


@pytest.mark.parametrize("index", range(len(SWAP_POINTS)), ids=[p[0] for p in SWAP_POINTS])
def test_server_killed_inside_a_table_swap_then_rerun_equals_a_clean_build(
    index: int, embedded: Embedded, bases: dict[str, Any], landings: list[Landing], tmp_path: Path
) -> None:
    _trial(embedded, bases, landings, "swap", SWAP_POINTS[index], index, tmp_path)


@pytest.mark.parametrize("index", range(len(MERGE_POINTS)), ids=[p[0] for p in MERGE_POINTS])
def test_server_killed_inside_an_incremental_merge_then_rerun_equals_a_clean_build(
    index: int, embedded: Embedded, bases: dict[str, Any], landings: list[Landing], tmp_path: Path
) -> None:
    _trial(embedded, bases, landings, "merge", MERGE_POINTS[index], index, tmp_path)


def test_the_kills_landed_while_the_transform_was_running(landings: list[Landing]) -> None:
    if not landings:
        pytest.skip("no kill trial ran in this session (deselected)")
    early = [landing for landing in landings if not landing.inside]
    assert len(early) <= len(landings) // 8, f"too many kills landed outside a running transform: {early}"
