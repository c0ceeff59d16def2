"""Messages a user meets: a misspelled --vars key, a misspelled ref next to another broken file, the line of a
config error, and `elt show` to look at the data without a MongoDB shell."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from elt.config import load_project
from elt.errors import ModelError
from elt.models import load_models
from tests.conftest import REPO_ROOT


@pytest.fixture
def shipped_project(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "config", tmp_path / "config")
    shutil.copytree(REPO_ROOT / "aggregations", tmp_path / "aggregations")
    return tmp_path


def test_a_misspelled_vars_key_is_refused_with_did_you_mean(shipped_project: Path) -> None:
    project = load_project(shipped_project, env={})
    with pytest.raises(
        ModelError, match=r"--vars: unknown var 'min_hours_per_dya'; did you mean 'min_hours_per_day'\?"
    ):
        load_models(project, {"min_hours_per_dya": 20})
    load_models(project, {"min_hours_per_day": 20, "stuck_hours": 4})  # known vars pass
    for command in ("transform", "test"):
        result = CliRunner().invoke(main, ["--project-dir", str(shipped_project), command,
                                           "--vars", "{min_hours_per_dya: 20}"])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "did you mean 'min_hours_per_day'" in result.output


def test_unknown_ref_keeps_its_did_you_mean_when_the_referenced_file_is_broken(shipped_project: Path) -> None:
    marts = shipped_project / "aggregations" / "marts"
    broken = marts / "station_day_last_hours.yml"
    broken.write_text(broken.read_text() + "bogus_key: 1\n")
    freshness = marts / "station_freshness.yml"
    text = freshness.read_text()
    freshness.write_text(text.replace("ref('station_day_last_hours')", "ref('station_day_last_hour')"))
    with pytest.raises(ModelError) as excinfo:
        load_models(load_project(shipped_project, env={}))
    message = str(excinfo.value)
    line = 1 + broken.read_text().splitlines().index("bogus_key: 1")
    assert (
        f"station_day_last_hours.yml: line {line}: model 'station_day_last_hours': bogus_key: unknown key"
        in message
    )
    assert "unknown ref 'station_day_last_hour'; did you mean 'station_day_last_hours'?" in message

    freshness.write_text(text)  # the exact name of the broken model: said so, not "unknown"
    with pytest.raises(ModelError, match="ref 'station_day_last_hours': that model is invalid itself"):
        load_models(load_project(shipped_project, env={}))


def test_elt_show_lists_collections_and_prints_the_newest_documents(
    project_dir: Path, mongo_db: Database
) -> None:
    mongo_db.daily_sensor_averages.insert_many([
        {"_id": f"{sid}|2024-09-0{d}", "station_id": sid, "day": f"2024-09-0{d}", "pm25_mean": float(d),
         "_updated_at": datetime(2024, 9, d, tzinfo=timezone.utc)}
        for sid in ("283164601", "283181971") for d in (1, 2, 3)
    ])  # fmt: skip
    base = ["--project-dir", str(project_dir), "show"]
    listing = CliRunner().invoke(main, base)
    assert listing.exit_code == 0, listing.output
    assert "daily_sensor_averages" in listing.output and "6 documents" in listing.output

    shown = CliRunner().invoke(main, [*base, "daily_sensor_averages", "--station", "SMART188", "-n", "2",
                                      "--fields", "day,pm25_mean"])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    docs = [json.loads(line) for line in shown.output.splitlines()]
    assert [(d["_id"], d["day"], d["pm25_mean"]) for d in docs] == [
        ("283164601|2024-09-03", "2024-09-03", 3.0),
        ("283164601|2024-09-02", "2024-09-02", 2.0),
    ]

    typo = CliRunner().invoke(main, [*base, "daily_sensor_average"])
    assert typo.exit_code == 2 and "did you mean 'daily_sensor_averages'?" in typo.output
