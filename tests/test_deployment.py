"""The deployment rules: the compose healthcheck is `elt status --check` and fails on a stale station; the
`change-me` placeholders of .env.example are refused at start; a production target never falls back to the
embedded store; the docker build context leaves local state out."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from elt.config import load_project
from elt.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.test_compose import _SECRET_NAME, ENV_EXAMPLE, load_compose, read_env_file

SMART188, SMART189 = "283164601", "283181971"
REFUSE = REPO_ROOT / "docker" / "elt" / "refuse-placeholders.sh"
SCHEDULER = REPO_ROOT / "docker" / "elt" / "scheduler.sh"


def _elt(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``elt`` in a subprocess with exactly ``env`` (plus PATH and HOME)."""
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run([sys.executable, "-m", "elt", "--project-dir", str(project), *args],
                          env={**base, **env}, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def shipped_project(tmp_path: Path) -> Path:
    """The repository's config/ (targets dev and prod) and aggregations/ in a temporary project."""
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    shutil.copytree(REPO_ROOT / "aggregations", tmp_path / "aggregations")
    return tmp_path


# --- healthcheck -------------------------------------------------------------------------------------------


def test_the_elt_healthcheck_is_status_check_and_fails_while_a_station_is_stale(
    project_dir: Path, mongo_db: Database
) -> None:
    healthcheck = load_compose(read_env_file(ENV_EXAMPLE))["services"]["elt"]["healthcheck"]["test"]
    assert healthcheck == ["CMD", "elt", "status", "--check"]
    args = ["--project-dir", str(project_dir), *healthcheck[2:]]
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    fresh = {"co": 0.3, "pm25": 9.0}
    mongo_db.raw_airqino_hourly.insert_many([
        {"_id": f"{SMART188}|fresh", "station_id": SMART188, "ts": now - timedelta(hours=1), **fresh},
        {"_id": f"{SMART189}|fresh", "station_id": SMART189, "ts": now - timedelta(hours=2), **fresh},
    ])  # fmt: skip
    healthy = CliRunner().invoke(main, args)
    assert healthy.exit_code == 0, healthy.output

    mongo_db.raw_airqino_hourly.delete_one({"_id": f"{SMART189}|fresh"})
    mongo_db.raw_airqino_hourly.insert_one({"_id": f"{SMART189}|old", "station_id": SMART189,
                                            "ts": now - timedelta(hours=7), **fresh})  # fmt: skip
    stale = CliRunner().invoke(main, args)  # SMART189: 7 h old, stale_after_hours 6
    assert stale.exit_code == 1
    assert "stale: SMART189" in stale.output


# --- placeholders ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MONGO_URI", "mongodb://elt:change-me@mongo:27017/airqino?authSource=airqino"),
        ("SERVING_DSN", "postgresql://elt_publisher:change-me@postgres:5432/airqino"),
        ("AIRQINO_TOKEN", "change-me"),
        ("ELT_ALERT_WEBHOOK_URL", "https://hooks.example.org/CHANGE-ME"),
    ],
)
def test_elt_refuses_a_placeholder_secret_with_exit_2(shipped_project: Path, name: str, value: str) -> None:
    env = {"ELT_TARGET": "prod", "MONGO_URI": "mongodb://127.0.0.1:9/", name: value}
    done = _elt(shipped_project, "status", env=env)
    assert done.returncode == 2, done.stderr
    assert f"{name} still holds the placeholder 'change-me'" in done.stderr
    assert "change-me@" not in done.stderr and "Traceback" not in done.stderr


def test_a_placeholder_in_a_secret_file_is_refused(shipped_project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "airqino_password"
    secret.write_text("change-me\n")
    with pytest.raises(ConfigError, match=r"AIRQINO_PASSWORD_FILE \(.*\) still holds the placeholder"):
        load_project(shipped_project, env={"AIRQINO_PASSWORD_FILE": str(secret)})


def test_the_container_scripts_refuse_placeholders_before_running_anything(tmp_path: Path) -> None:
    calls = tmp_path / "elt-calls"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "elt").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 0\n')
    (fake_bin / "elt").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "ELT_RUN_ON_START": "true",
           "MONGO_URI": "mongodb://elt:change-me@mongo:27017/airqino", "SERVING_DSN": "postgresql://ok@pg/x"}  # fmt: skip
    done = subprocess.run(["sh", str(SCHEDULER)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "placeholder 'change-me'" in done.stderr and "MONGO_URI" in done.stderr
    assert "SERVING_DSN" not in done.stderr and "change-me@" not in done.stderr  # names only, never values
    assert not calls.exists(), "elt ran although a placeholder was set"

    clean = subprocess.run(["sh", str(REFUSE)], env={"PATH": "/usr/bin:/bin", "MONGO_URI": "mongodb://a:b@m/"},
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert clean.returncode == 0, clean.stderr


def test_compose_preflight_checks_every_secret_before_the_stack_starts() -> None:
    services = load_compose(read_env_file(ENV_EXAMPLE))["services"]
    preflight = services["preflight"]
    assert preflight["command"] == ["elt-refuse-placeholders"] and preflight["restart"] == "no"
    secrets = {k for k in read_env_file(ENV_EXAMPLE) if _SECRET_NAME.search(k)}
    assert secrets <= set(preflight["environment"]), secrets - set(preflight["environment"])
    for name in ("mongo", "postgres"):
        assert services[name]["depends_on"]["preflight"] == {"condition": "service_completed_successfully"}
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY docker/elt/refuse-placeholders.sh /usr/local/bin/elt-refuse-placeholders" in dockerfile


# --- production target -------------------------------------------------------------------------------------


def test_the_production_target_without_mongo_uri_is_refused_and_never_embedded(shipped_project: Path) -> None:
    done = _elt(shipped_project, "run", "--no-summary", env={"ELT_TARGET": "prod"})
    assert done.returncode == 2, done.stderr
    assert "target 'prod' is a production target" in done.stderr and "MONGO_URI" in done.stderr
    assert not (shipped_project / ".elt").exists(), "the embedded store was started for a production target"
    with pytest.raises(ConfigError, match="no MongoDB URI is set"):
        load_project(shipped_project, target="prod", env={})
    project = load_project(shipped_project, env={"ELT_TARGET": "prod", "MONGO_URI": "mongodb://db:27017/"})
    assert project.target.mongo_uri is not None and project.target.embedded is False
    assert load_project(shipped_project, env={}).target_name == "dev"  # the embedded default, for trying


def test_env_example_and_the_cron_line_select_the_production_target() -> None:
    env = read_env_file(ENV_EXAMPLE)
    assert env["ELT_TARGET"] == "prod"
    for name in ("MONGO_URI", "SERVING_DSN", "ELT_ALERT_WEBHOOK_URL"):
        assert name in env, f".env.example lacks {name}"
    profiles = yaml.safe_load((REPO_ROOT / "config" / "profiles.yml").read_text())
    assert profiles["targets"]["prod"]["embedded"] is False
    cron = [line for line in (REPO_ROOT / "pipelines" / "cron" / "airqino-elt.crontab").read_text().splitlines()
            if line and not line.startswith(("#", "SHELL"))]  # fmt: skip
    assert cron and all("elt --target prod " in line for line in cron)


# --- docker build context ----------------------------------------------------------------------------------


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out (last matching pattern wins; ``!`` re-includes)."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], bare) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_leaves_local_state_out_but_keeps_what_the_images_copy() -> None:
    patterns = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    for local in (".venv", ".superset-venv", ".airflow-venv", ".elt", "target", ".git", ".env",
                  "elt/__pycache__/cli.cpython-311.pyc"):  # fmt: skip
        assert _ignored(local, patterns), f".dockerignore does not exclude {local}"
    for dockerfile in [REPO_ROOT / "Dockerfile", *REPO_ROOT.glob("docker/*/Dockerfile")]:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert not _ignored(source, patterns), (
                        f"{dockerfile.name}: COPY {source} is in .dockerignore"
                    )
