"""The database server going away in the middle of a run, then a rerun: the database equals the reference.

- The embedded SecantusDB daemon (no ``MONGO_URI``) is killed with SIGKILL while ``elt load`` writes; the next
  ``elt`` command starts a new daemon on the same data directory and the rerun completes the data.
- A standalone server started by the test on its own storage path is stopped (SIGTERM, then SIGKILL in a second
  case) while ``elt load`` writes, and restarted on the same path and port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from elt.simulator import AirQinoSimulator
from elt.store import read_embedded_state, stop_embedded_server
from tests.faults.helpers import FaultProject, assert_same_database, client_for, database_digest
from tests.simulator_fixtures import SIMULATOR_NOW

pytest.importorskip("secantus", reason="the embedded server tests need SecantusDB")


@pytest.fixture(scope="module")
def reference(fault_project_factory: Callable[..., FaultProject], fault_simulator: AirQinoSimulator,
              mongo_server_uri: str) -> dict[str, Any]:  # fmt: skip
    """Digest of an uninterrupted load at SIMULATOR_NOW on the test server, and its raw row count."""
    fault_simulator.set_now(SIMULATOR_NOW)
    project = fault_project_factory("restart_ref")
    assert project.run("load").returncode == 0
    db = client_for(mongo_server_uri)[project.database]
    return {"digest": database_digest(db), "raw": db.raw_airqino_hourly.estimated_document_count()}


def _raw_count(uri: str, database: str) -> int:
    client = client_for(uri)
    try:
        return client[database].raw_airqino_hourly.estimated_document_count()
    finally:
        client.close()


def test_embedded_daemon_killed_mid_load_is_restarted_by_the_next_command(
    reference: dict[str, Any],
    fault_project_factory: Callable[..., FaultProject],
    fault_simulator: AirQinoSimulator,
    tmp_path: Path,
) -> None:
    fault_simulator.set_now(SIMULATOR_NOW)
    project = fault_project_factory("embedded", mongo_uri=None)
    data_dir = project.directory / ".elt" / "mongo"
    try:
        assert project.run("server", "start").returncode == 0
        state = read_embedded_state(data_dir)
        assert state is not None
        load = project.start("load")
        # SIGKILL the daemon (not the load) once a fifth of the rows have landed.
        deadline = time.monotonic() + 60
        while (
            _raw_count(state["uri"], project.database) < reference["raw"] // 5 and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        os.kill(int(state["pid"]), signal.SIGKILL)
        first = load.wait(120)
        assert first in (0, 1), f"the interrupted load crashed with exit {first} instead of failing cleanly"
        assert read_embedded_state(data_dir) is None, "the daemon survived SIGKILL"

        rerun = project.run("load")
        assert rerun.returncode == 0, rerun.stderr
        restarted = read_embedded_state(data_dir)
        assert restarted is not None and restarted["pid"] != state["pid"]
        db = client_for(restarted["uri"])[project.database]
        assert_same_database(
            database_digest(db), reference["digest"], f"embedded restart (killed load exit {first})"
        )
    finally:
        stop_embedded_server(data_dir)


@contextlib.contextmanager
def standalone_server(storage: Path, port: int) -> Iterator[subprocess.Popen]:
    """A SecantusDB server on ``storage``/``port`` started by the test (always stopped at the end)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port), "--storage-path",
         str(storage), "--standalone", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            client: MongoClient = MongoClient(
                f"mongodb://127.0.0.1:{port}/", directConnection=True, serverSelectionTimeoutMS=300
            )
            try:
                client.admin.command("ping")
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert process.poll() is None and time.monotonic() < deadline, "the test server did not start"
                time.sleep(0.2)
            finally:
                client.close()
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "kill-9"])
def test_server_stopped_mid_load_and_restarted_on_the_same_storage(
    stop_signal: signal.Signals,
    reference: dict[str, Any],
    fault_project_factory: Callable[..., FaultProject],
    fault_simulator: AirQinoSimulator,
    tmp_path: Path,
) -> None:
    fault_simulator.set_now(SIMULATOR_NOW)
    storage, port = tmp_path / "storage", _free_port()
    uri = f"mongodb://127.0.0.1:{port}/"
    project = fault_project_factory("standalone", mongo_uri=uri)
    with standalone_server(storage, port) as server:
        load = project.start("load")
        deadline = time.monotonic() + 60
        while _raw_count(uri, project.database) < reference["raw"] // 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.send_signal(stop_signal)
        server.wait(60)
    with standalone_server(storage, port):
        first = load.wait(120)
        assert first in (0, 1), f"the interrupted load crashed with exit {first} instead of failing cleanly"
        rerun = project.run("load")
        assert rerun.returncode == 0, rerun.stderr
        db = client_for(uri)[project.database]
        digest = database_digest(db)
    assert_same_database(digest, reference["digest"], f"{stop_signal.name} mid-load (load exit {first})")
