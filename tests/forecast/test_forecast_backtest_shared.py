"""Acceptance on real data: backtest of the last 8 weeks of the recorded 2023-09 → 2024-09 API responses.

Staging rows come from ``elt.forecast.recorded``: the files landed in a scratch database and QC'd by the staging
model there, the one QC implementation. Done when: PM2.5 skill ≥ 0.12 at +1 h and ≥ 0.20 at +2 h at each
station, the model beats the persistence–climatology blend at each station and horizon, SMART189's CO is
scored and SMART188's dead CO is reported as "no valid data".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from elt.config import Project, load_project
from elt.forecast.backtest import BacktestResult, run_backtest
from elt.forecast.plot import plot_backtest
from elt.forecast.recorded import read_recorded_dir
from elt.forecast.series import hourly_grid

pytestmark = [pytest.mark.shared_data, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SMART188, SMART189 = "283164601", "283181971"
#: The recording ends 2024-09-09 10:00 (provisional); 8 weeks of origins before 2024-09-09 00:00.
START, END = pd.Timestamp("2024-07-15"), pd.Timestamp("2024-09-09")


def _project(directory: Path) -> Project:
    """The repository's config and models in ``directory`` (the backtest needs its staging model)."""
    (directory / "config").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "elt.yml", directory / "config" / "elt.yml")
    shutil.copytree(REPO_ROOT / "aggregations", directory / "aggregations")
    return load_project(directory, env={})


@pytest.fixture(scope="module")
def backtest(
    shared_data_dir: Path, mongo_client: MongoClient, tmp_path_factory: pytest.TempPathFactory
) -> BacktestResult:
    project = _project(tmp_path_factory.mktemp("backtest") / "project")
    frame = read_recorded_dir(project, mongo_client, shared_data_dir / "v3_full_response_2024-09-09")
    result = run_backtest(hourly_grid(frame), START, END)
    print(pd.DataFrame([r.to_json() for r in result.results]).drop(columns="reason").to_string())
    print(f"backtest: {result.refits} refits in {result.seconds:.0f} s")
    return result


@pytest.mark.parametrize("station_id", [SMART188, SMART189])
def test_pm25_skill_meets_the_bar_at_each_station(backtest: BacktestResult, station_id: str) -> None:
    plus1 = backtest.result(station_id, "pm25", 1)
    plus2 = backtest.result(station_id, "pm25", 2)
    assert plus1.n > 1000 and plus2.n > 1000
    assert plus1.skill >= 0.12
    assert plus2.skill >= 0.20


@pytest.mark.parametrize("station_id", [SMART188, SMART189])
@pytest.mark.parametrize("horizon", [1, 2])
def test_model_beats_the_blend_and_persistence(
    backtest: BacktestResult, station_id: str, horizon: int
) -> None:
    row = backtest.result(station_id, "pm25", horizon)
    assert row.mae_model < row.mae_blend < row.mae_persistence
    assert row.best == "gbm"


def test_co_is_scored_for_smart189_and_reported_no_valid_data_for_smart188(backtest: BacktestResult) -> None:
    for horizon in (1, 2):
        live = backtest.result(SMART189, "co", horizon)
        assert live.status == "ok" and live.n > 1000
        assert live.skill is not None and live.skill > 0
        dead = backtest.result(SMART188, "co", horizon)
        assert (dead.status, dead.n, dead.skill) == ("no_valid_data", 0, None)
        assert dead.reason.startswith("no valid data")
    assert backtest.predictions.query("station_id == @SMART188 and pollutant == 'co'").empty


def test_every_refit_learns_only_from_hours_before_it(backtest: BacktestResult) -> None:
    rows = backtest.predictions
    assert rows["refit_at"].nunique() == 8
    assert (rows["origin"] >= rows["refit_at"]).all()
    assert (rows["origin"] < rows["refit_at"] + pd.Timedelta(days=7)).all()
    assert rows["origin"].min() >= START and rows["origin"].max() < END


def test_plot_is_written(backtest: BacktestResult, tmp_path: Path) -> None:
    path = plot_backtest(
        backtest, tmp_path / "backtest.png", names={SMART188: "SMART188", SMART189: "SMART189"}
    )
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_recorded_path_gives_the_same_series_as_load_and_transform(
    project_dir: Path, mongo_db: Database, shared_data_dir: Path
) -> None:
    """The acceptance above reads the recorded files through a scratch database; the production path (elt load,
    elt transform, then stg_airqino_hourly in the project's database) must give the forecast exactly the same
    hourly series."""
    from elt.forecast.run import load_grids
    from elt.transform.task import run_transform
    from tests.load_helpers import run_load

    archive = shared_data_dir / "v3_full_response_2024-09-09"
    assert run_load(project_dir, "--from-dir", str(archive)).exit_code == 0
    project = load_project(project_dir)
    assert run_transform(project, mongo_db, select=["stg_airqino_hourly"]).exit_code == 0
    from_database = load_grids(mongo_db, [SMART188, SMART189])
    from_files = hourly_grid(read_recorded_dir(project, mongo_db.client, archive))
    for station_id in (SMART188, SMART189):
        pd.testing.assert_frame_equal(from_database[station_id], from_files[station_id], check_freq=False)
