"""README's main command: ``elt run --demo`` completes offline on the embedded store and prints the summary;
a second run changes nothing in the marts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from tests.conftest import REPO_ROOT
from tests.run.run_helpers import forecasts_missing_from_the_chart, mart_digest

pytestmark = pytest.mark.timeout(900)


def test_demo_runs_the_whole_job_offline_and_a_rerun_changes_no_mart(tmp_path: Path) -> None:
    pytest.importorskip(
        "secantus", reason="the demo runs on the embedded store: pip install -e '.[embedded]'"
    )
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "elt.yml").write_text((REPO_ROOT / "config" / "elt.yml").read_text())
    (project / "config" / "profiles.yml").write_text(yaml.safe_dump(
        {"default_target": "dev", "targets": {"dev": {"database": "airqino", "embedded_path": ".elt/mongo"}}}
    ))  # fmt: skip
    (project / "aggregations").symlink_to(REPO_ROOT / "aggregations")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MONGO_URI", "ELT_", "AIRQINO_", "SERVING"))
    }
    env["ELT_DEMO_NOW"] = "2024-09-09T10:30Z"
    elt = [sys.executable, "-m", "elt", "--project-dir", str(project)]
    try:
        first = subprocess.run([*elt, "run", "--demo"], env=env, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stderr[-4000:]
        summary = " ".join(first.stdout.replace("│", " ").split())  # the panel wraps long lines
        for expected in ("demo (simulated data)", "success", "SMART188", "SMART189", "Daily means, last 3 days",
                         "2024-09-08", "Next two hours (forecast)", "publish skipped (no SERVING_DSN",
                         "database airqino_demo"):  # fmt: skip
            assert expected in summary, f"{expected!r} missing from the summary:\n{summary}"
        assert len(first.stdout.splitlines()) <= 50  # one screen

        uri = json.loads((project / ".elt" / "mongo.server.json").read_text())["uri"]
        with MongoClient(uri, directConnection=True, tz_aware=True) as client:
            before = mart_digest(client, "airqino_demo")
            assert before["daily_sensor_averages"][0] > 0 and before["forecasts"][0] > 0
            assert "airqino" not in client.list_database_names()  # the demo never touches the live database
            # the dashboard's mart holds the run's own forecasts
            assert forecasts_missing_from_the_chart(client["airqino_demo"]) == []

            again = subprocess.run([*elt, "run", "--demo", "--json"], env=env, capture_output=True, text=True,
                                   timeout=600)  # fmt: skip
            assert again.returncode == 0, again.stderr[-4000:]
            record = json.loads(again.stdout)
            assert record["status"] == "success" and record["window"]["mode"] == "incremental"
            load = next(s for s in record["steps"] if s["name"] == "load")["counts"]
            assert load["inserted"] == 0 and load["updated"] == 0
            assert mart_digest(client, "airqino_demo") == before
    finally:
        subprocess.run([*elt, "server", "stop"], env=env, capture_output=True, timeout=120)
