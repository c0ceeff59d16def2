"""``elt forecast train|predict|backtest`` on a project database, and the message when the extra is missing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from tests.forecast.forecast_helpers import START, staging_documents, synthetic_staging

DAYS = 30


def elt(project_dir: Path, *args: str):
    return CliRunner().invoke(
        main, ["--project-dir", str(project_dir), "forecast", *args], catch_exceptions=False
    )


@pytest.fixture
def project_with_staging(project_dir: Path, mongo_db: Database) -> Path:
    staging = synthetic_staging(days=DAYS, dead_co=("283164601",))
    mongo_db.stg_airqino_hourly.insert_many(staging_documents(staging))
    return project_dir


def test_train_predict_backtest_through_the_cli(
    project_with_staging: Path, mongo_db: Database, tmp_path: Path
):
    trained = elt(project_with_staging, "train", "--validate-weeks", "1", "--json")
    assert trained.exit_code == 0, trained.output
    meta = json.loads(trained.stdout)
    assert meta["_id"] == meta["version"] and "models" not in meta
    # trained on every final hour: the newest one (the provisional hour excluded) is the last training target
    assert meta["window"]["end"] == (START + timedelta(days=DAYS, hours=-1)).isoformat()
    assert {(s["station_id"], s["pollutant"], s["status"]) for s in meta["series"] if s["horizon_h"] == 1} == {
        ("283164601", "co", "no_valid_data"), ("283164601", "pm25", "ok"),
        ("283181971", "co", "ok"), ("283181971", "pm25", "ok"),
    }  # fmt: skip

    predicted = elt(project_with_staging, "predict", "--json")
    assert predicted.exit_code == 0, predicted.output
    first = json.loads(predicted.stdout)
    assert (first["written"], first["inserted"], len(first["skipped"])) == (6, 6, 2)
    assert {d["station_id"] for d in first["forecasts"]} == {"283164601", "283181971"}
    again = json.loads(elt(project_with_staging, "predict", "--json").stdout)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 6)
    assert mongo_db.forecasts.count_documents({}) == 6

    png = tmp_path / "bt.png"
    backtest = elt(project_with_staging, "backtest", "--start", "2024-05-24", "--end", "2024-05-31", "--json",
                   "--plot", str(png))  # fmt: skip
    assert backtest.exit_code == 0, backtest.output
    results = json.loads(backtest.stdout)["results"]
    assert len(results) == 8
    keys = {"station_id", "pollutant", "horizon_h", "n", "mae_model", "mae_persistence", "mae_blend", "skill"}
    assert all(keys <= set(r) for r in results)
    dead = [r for r in results if r["station_id"] == "283164601" and r["pollutant"] == "co"]
    assert [(r["status"], r["n"]) for r in dead] == [("no_valid_data", 0), ("no_valid_data", 0)]
    assert all(r["reason"].startswith("no valid data") for r in dead)
    live = [r for r in results if r["status"] == "ok"]
    assert len(live) == 6 and all(r["n"] > 100 and r["mae_model"] > 0 for r in live)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_predict_without_a_model_says_how_to_train(project_with_staging: Path) -> None:
    result = elt(project_with_staging, "predict")
    assert result.exit_code == 1
    assert "no trained forecast model" in result.output and "elt forecast train" in result.output


def test_backtest_rejects_an_empty_range(project_dir: Path) -> None:
    result = elt(project_dir, "backtest", "--start", "2024-09-09", "--end", "2024-09-01")
    assert result.exit_code == 2
    assert "must be before --end" in result.output


def test_missing_forecast_extra_names_the_install_command(project_dir: Path, monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    result = elt(project_dir, "train")
    assert result.exit_code == 1
    assert 'pip install "airqino-elt[forecast]"' in result.output
    assert "sklearn" in result.output


def test_the_cli_does_not_import_pandas_or_sklearn() -> None:
    code = "import sys, elt.cli; print(sorted(m for m in ('pandas', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_step_trains_when_due_then_only_predicts(project_with_staging: Path, mongo_db: Database) -> None:
    from elt.config import load_project
    from elt.forecast.run import retrain_reason, run_forecast, train_project
    from elt.forecast.store import load_latest

    project = load_project(project_with_staging)
    first = run_forecast(project, mongo_db, run_id="run-1")
    assert first.ok and first.trained is not None
    assert (first.counts()["inserted"], first.counts()["skipped"]) == (6, 2)
    second = run_forecast(project, mongo_db, run_id="run-2")
    assert second.trained is None
    counts = second.counts()
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (0, 0, 6)
    # a model trained on data that ends 7 days before the newest final hour is due for retraining
    train_project(project, mongo_db, until=START + timedelta(days=DAYS - 8), validate_weeks=1)
    assert "7 days or more old" in retrain_reason(project, mongo_db, load_latest(mongo_db))
