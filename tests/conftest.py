"""Shared fixtures: a real wire-protocol MongoDB (MONGO_URI or one ephemeral SecantusDB per test run),
a fresh database per test, a minimal project directory, and the recorded AirQino data when present."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient
from pymongo.database import Database

REPO_ROOT = Path(__file__).resolve().parents[1]

from tests.simulator_fixtures import *  # noqa: E402,F403 - the airqino_simulator fixture family

#: Heavy markers that pyproject's ``addopts`` deselects from plain ``pytest``: marker -> (setup, command).
#: README's "Testing" section and ``.ci/run`` give the same commands.
HEAVY_MARKERS: dict[str, tuple[str, str]] = {
    "e2e": ("bash scripts/ci-setup-superset.sh", ".venv/bin/python -m pytest -m e2e"),
    "airflow": ("bash scripts/ci-setup-airflow.sh", ".venv/bin/python -m pytest -m airflow"),
    "faults": ("", ".venv/bin/python -m pytest -m faults"),
    "soak": ("", ".venv/bin/python -m pytest -m soak"),
}
#: The ``-m`` expression of pyproject's ``addopts``.
DEFAULT_MARKEXPR = "not (e2e or airflow or faults or soak)"
_deselected_heavy: dict[str, int] = {}


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say up front that plain ``pytest`` leaves the heavy markers out."""
    if config.option.markexpr != DEFAULT_MARKEXPR:
        return None
    return f"heavy markers deselected by default: {', '.join(HEAVY_MARKERS)} (how to run them: end of the report)"


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count the deselected tests of each heavy marker."""
    for item in items:
        for name in HEAVY_MARKERS:
            if item.get_closest_marker(name) is not None:
                _deselected_heavy[name] = _deselected_heavy.get(name, 0) + 1


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> Iterator[None]:
    """Name what the default marker expression deselected, and the command that runs each heavy marker (after
    the short test summary, so it sits right above pytest's final line)."""
    yield
    if config.option.markexpr != DEFAULT_MARKEXPR or not _deselected_heavy:
        return
    counts = ", ".join(f"{name} ({_deselected_heavy.get(name, 0)})" for name in HEAVY_MARKERS)
    terminalreporter.write_sep("=", f"deselected by default: {counts}")
    for name, (setup, command) in HEAVY_MARKERS.items():
        how = f"{setup} && {command}" if setup else command
        terminalreporter.write_line(f"{name}: {_deselected_heavy.get(name, 0)} tests; run: {how}")
    terminalreporter.write_line(".ci/run runs all of them (README, Testing)")


@pytest.fixture(scope="session")
def mongo_server_uri() -> Iterator[str]:
    """URI of a real wire server: MONGO_URI when set, else one ephemeral SecantusDB for the whole run.

    The server runs in its own process so it does not compete with the code under test for the GIL.
    """
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    pytest.importorskip("secantus", reason="pip install 'airqino-elt[embedded]' or set MONGO_URI")
    from elt.store import ensure_embedded_server, stop_embedded_server

    storage = Path(tempfile.mkdtemp(prefix="elt-test-mongo-")) / "mongo"
    try:
        yield ensure_embedded_server(storage)
    finally:
        stop_embedded_server(storage)
        shutil.rmtree(storage.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def mongo_client(mongo_server_uri: str) -> Iterator[MongoClient]:
    """One client for the whole run (tz-aware, direct connection)."""
    client: MongoClient = MongoClient(mongo_server_uri, directConnection=True, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def mongo_db(mongo_client: MongoClient) -> Iterator[Database]:
    """A fresh, uniquely named database, dropped after the test."""
    name = f"elt_test_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture
def project_dir(
    tmp_path: Path, mongo_server_uri: str, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A project copied from the repo (config + aggregations) whose target is the test server and ``mongo_db``."""
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "elt.yml", project / "config" / "elt.yml")
    if (REPO_ROOT / "aggregations").exists():
        shutil.copytree(REPO_ROOT / "aggregations", project / "aggregations")
    profiles = {
        "default_target": "test",
        "targets": {"test": {"database": mongo_db.name, "embedded_path": str(tmp_path / "unused-embedded")}},
    }
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    for name in ("ELT_TARGET", "ELT_DATABASE", "AIRQINO_TOKEN", "AIRQINO_USERNAME", "AIRQINO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONGO_URI", mongo_server_uri)
    return project


def _shared_data_candidates() -> list[Path]:
    candidates = [REPO_ROOT.parent / "shared" / "data" / "airqino"]
    if os.environ.get("AIRQINO_SHARED_DATA"):
        candidates.insert(0, Path(os.environ["AIRQINO_SHARED_DATA"]))
    return candidates


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data/airqino`` (recorded real responses); the test is skipped when it is absent."""
    for candidate in _shared_data_candidates():
        if (candidate / "v3_full_response_2024-09-09").is_dir():
            return candidate
    pytest.skip("recorded AirQino data (../shared/data/airqino) not present")
