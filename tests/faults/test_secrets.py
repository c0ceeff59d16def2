"""No secret leaks: with an API token or password, MongoDB credentials and a PostgreSQL DSN password set in the
environment, neither the logs (text and JSON, verbose), the command output, the artifacts under ``target/``,
nor any document in the database (``elt_runs``, ``load_batches``, ...) contains a secret, on the happy path and
on the error paths (wrong password, API refusing the token, publish failing to connect)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from elt.simulator import AirQinoSimulator, AuthSettings
from elt.simulator import faults as f
from tests.faults.helpers import FaultProject, secret_hits, write_project

TOKEN = f"tok-{secrets.token_hex(12)}"
USERNAME = "elt-secret-user"
PASSWORD = f"pw-{secrets.token_hex(12)}"
MONGO_PASSWORD = f"mpw-{secrets.token_hex(12)}"
DSN_PASSWORD = f"dsn-{secrets.token_hex(12)}"
SECRETS = {
    "AIRQINO_TOKEN": TOKEN,
    "AIRQINO_PASSWORD": PASSWORD,
    "MONGO_URI password": MONGO_PASSWORD,
    "SERVING_DSN password": DSN_PASSWORD,
}
MONGO_USER = f"elt_secret_{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def credentialed_uri(mongo_server_uri: str, mongo_client: MongoClient) -> Iterator[str]:
    """The test server's URI with a user and password (a user created for this module)."""
    try:
        mongo_client.admin.command("createUser", MONGO_USER, pwd=MONGO_PASSWORD, roles=["root"])
    except PyMongoError as exc:
        pytest.skip(f"cannot create a MongoDB user on the test server ({exc}); the URI would carry no secret")
    parts = urlsplit(mongo_server_uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    yield urlunsplit(parts._replace(netloc=f"{MONGO_USER}:{MONGO_PASSWORD}@{host}", query="authSource=admin"))
    mongo_client.admin.command("dropUser", MONGO_USER)


@pytest.fixture
def secured_simulator(airqino_simulator_factory: Callable[..., AirQinoSimulator]) -> AirQinoSimulator:
    """Two stations behind bearer auth: the static TOKEN, or USERNAME/PASSWORD through the token endpoint."""
    auth = AuthSettings(static_tokens=(TOKEN,), users={USERNAME: PASSWORD})
    return airqino_simulator_factory(auth=auth, window_days=5)


def _project(
    tmp_path: Path, sim: AirQinoSimulator, uri: str, mode: str, mongo_client: MongoClient
) -> FaultProject:
    database = f"elt_fault_secret_{secrets.token_hex(4)}"
    auth: dict[str, Any] = {"mode": mode}
    env = {"SERVING_DSN": f"postgresql://publisher:{DSN_PASSWORD}@127.0.0.1:9/serving"}
    if mode == "bearer":
        env["AIRQINO_TOKEN"] = TOKEN
    else:
        auth.update(token_url=sim.token_url, client_id=AuthSettings().client_id)
        env.update(AIRQINO_USERNAME=USERNAME, AIRQINO_PASSWORD=PASSWORD)
    project = write_project(
        tmp_path / mode, database=database, base_url=sim.base_url, mongo_uri=uri, env=env,
        stations=[(sid, str(s.header()["station_name"])) for sid, s in sim.stations.items()],
        source={"auth": auth, "retries": 0},
    )  # fmt: skip
    return project


def _transform_available() -> bool:
    from elt.cli import main

    return "transform" in main.commands


def _scan(project: FaultProject, mongo_client: MongoClient) -> dict[str, list[str]]:
    """Where each secret appears: command output, files of the project, documents of the database."""
    found: dict[str, list[str]] = {}
    for i, text in enumerate(project.logs):
        for name in secret_hits(text, SECRETS):
            found.setdefault(name, []).append(f"output #{i}")
    for path in project.directory.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".txt", ".jsonl", ""):
            for name in secret_hits(path.read_text(errors="replace"), SECRETS):
                found.setdefault(name, []).append(str(path.relative_to(project.directory)))
    db = mongo_client[project.database]
    for collection in db.list_collection_names():
        text = "\n".join(json.dumps(doc, default=str) for doc in db[collection].find())
        for name in secret_hits(text, SECRETS):
            found.setdefault(name, []).append(f"collection {collection}")
    return found


@pytest.mark.parametrize("mode", ["bearer", "password"])
def test_no_secret_in_logs_artifacts_or_run_log(
    mode: str,
    tmp_path: Path,
    secured_simulator: AirQinoSimulator,
    credentialed_uri: str,
    mongo_client: MongoClient,
) -> None:
    project = _project(tmp_path, secured_simulator, credentialed_uri, mode, mongo_client)
    try:
        assert project.run("-v", "load", "--json").returncode == 0, project.logs[-1]
        if _transform_available():
            assert project.run("-v", "transform").returncode == 0, project.logs[-1]
        secured_simulator.advance(hours=1)
        # The API refuses one station: its error goes to the logs and load_batches.
        secured_simulator.set_fault(next(iter(secured_simulator.stations)), f.unauthorized(times=None))
        assert project.run("-v", "--log-format", "json", "load", "--json").returncode == 1
        secured_simulator.clear_faults()
        # A whole run: publish cannot connect to the DSN and records the (redacted) error in elt_runs.
        project.run("-v", "run", "--no-alerts")
        project.run("-v", "--log-format", "json", "run", "--no-alerts", "--json")
        # A wrong MongoDB password: the connection error names the server, not the password.
        wrong = credentialed_uri.replace(MONGO_PASSWORD, MONGO_PASSWORD[::-1])
        refused = project.run("-v", "load", env={"MONGO_URI": wrong})
        assert refused.returncode != 0
        assert "***" in refused.stderr or MONGO_USER not in refused.stderr
        assert _scan(project, mongo_client) == {}
        # The secrets were really in use: every data request carried credentials, and data landed.
        assert all(r.authorization for r in secured_simulator.requests() if r.station_id)
        assert mongo_client[project.database].raw_airqino_hourly.count_documents({}) > 0
    finally:
        mongo_client.drop_database(project.database)


def test_wrong_api_password_is_reported_without_it(
    tmp_path: Path, secured_simulator: AirQinoSimulator, credentialed_uri: str, mongo_client: MongoClient
) -> None:
    project = _project(tmp_path, secured_simulator, credentialed_uri, "password", mongo_client)
    wrong = f"{PASSWORD}-wrong"
    try:
        done = project.run("-v", "load", env={"AIRQINO_PASSWORD": wrong})
        assert done.returncode == 1
        assert wrong not in done.stderr + done.stdout
        assert "401" in done.stderr or "invalid" in done.stderr.lower()
        assert _scan(project, mongo_client) == {}
        audit_text = json.dumps(list(mongo_client[project.database].load_batches.find()), default=str)
        assert wrong not in audit_text
    finally:
        mongo_client.drop_database(project.database)


def test_the_scan_finds_raw_and_url_encoded_secrets() -> None:
    assert secret_hits(f"Authorization: Bearer {TOKEN}", SECRETS) == ["AIRQINO_TOKEN"]
    assert secret_hits("password=p%2Fw%3Fx", {"P": "p/w?x"}) == ["P"]
    assert secret_hits("nothing here", SECRETS) == []
