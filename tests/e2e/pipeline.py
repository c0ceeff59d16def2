"""The e2e test's data, built the way a user builds it: recorded AirQino responses → ``elt load --from-dir`` →
``elt transform`` → ``elt forecast train`` + hourly predictions over the last two days → ``elt transform`` →
``elt publish`` into a private PostgreSQL.

Every step runs the ``elt`` CLI in a subprocess against the test's MongoDB database; nothing is written by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pymongo.database import Database

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The recorded responses used: the complete 2024-09-09 snapshot (one year per station, with headers).
RECORDED_SNAPSHOT = "v3_full_response_2024-09-09"
#: Hours of hourly forecasts replayed before the newest final hour (the forecast chart shows the last 48 h).
FORECAST_HOURS = 49


def elt(project_dir: Path, env: dict[str, str], *args: str, timeout: float = 900) -> dict[str, Any]:
    """Run ``elt <args> --json`` in the project; its JSON output (asserts exit 0, showing stderr if not)."""
    completed = subprocess.run(
        [sys.executable, "-m", "elt", "--project-dir", str(project_dir), *args, "--json"],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"elt {' '.join(args)} failed: {completed.stderr[-3000:]}"
    return json.loads(completed.stdout) if completed.stdout.strip() else {}


def make_project(base: Path, database: str) -> Path:
    """A copy of the repo's config/ and aggregations/ whose target is ``database`` on MONGO_URI."""
    project_dir = base / "project"
    for folder in ("config", "aggregations"):
        shutil.copytree(
            REPO_ROOT / folder, project_dir / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    profiles = {"default_target": "e2e", "targets": {"e2e": {"database": database}}}
    (project_dir / "config" / "profiles.yml").write_text(yaml.safe_dump(profiles))
    return project_dir


def build_from_recorded_data(
    project_dir: Path, env: dict[str, str], db: Database, recorded: Path, timings: dict[str, float]
) -> None:
    """Load, transform, forecast and transform again; the step times go into ``timings``."""

    def step(name: str, *args: str) -> dict[str, Any]:
        started = time.monotonic()
        out = elt(project_dir, env, *args)
        timings[name] = time.monotonic() - started
        return out

    step("load", "load", "--from-dir", str(recorded / RECORDED_SNAPSHOT))
    step("transform", "transform")
    newest = db["stg_airqino_hourly"].find_one({"provisional": {"$ne": True}}, {"ts": 1}, sort=[("ts", -1)])[
        "ts"
    ]
    # trained on what was known before the replayed hours, so their verification is out of sample
    until = newest - timedelta(hours=FORECAST_HOURS)
    step("forecast_train", "forecast", "train", "--until", until.isoformat(), "--validate-weeks", "1")
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.forecast_hours", str(project_dir), str(FORECAST_HOURS)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"forecast replay failed: {completed.stderr[-3000:]}"
    timings["forecast_predict_hourly"] = time.monotonic() - started
    step("transform_forecast_marts", "transform", "--select", "tag:forecast")
