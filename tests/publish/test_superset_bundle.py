"""The Superset bundle built from config/superset/ (no Superset needed; the e2e test imports it for real)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from elt.config import load_project
from elt.errors import ConfigError
from elt.publish.dashboard import dsn_to_sqlalchemy_uri, without_password
from elt.publish.superset_bundle import build_bundle, bundle_files, load_source
from elt.publish.superset_charts import SUPPORTED_VIZ
from elt.publish.tables import serving_tables

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT / "config" / "superset"


@pytest.fixture(scope="module")
def files() -> dict[str, dict]:
    """The bundle files of the repo's dashboard."""
    tables = serving_tables(load_project(REPO_ROOT))
    return bundle_files(
        load_source(SOURCE),
        tables,
        "postgresql+psycopg2://superset_ro@db:5432/airqino",
        ["SMART188", "SMART189"],
    )


def _of(files: dict[str, dict], folder: str) -> list[dict]:
    return [content for name, content in files.items() if name.startswith(folder)]


def test_bundle_has_one_database_six_datasets_nine_charts_one_dashboard(files: dict[str, dict]) -> None:
    assert files["metadata.yaml"]["type"] == "Dashboard" and files["metadata.yaml"]["version"] == "1.0.0"
    assert [len(_of(files, f)) for f in ("databases/", "datasets/", "charts/", "dashboards/")] == [1, 6, 9, 1]


def test_files_link_only_by_existing_uuids(files: dict[str, dict]) -> None:
    database = _of(files, "databases/")[0]
    datasets = {d["uuid"] for d in _of(files, "datasets/")}
    assert all(d["database_uuid"] == database["uuid"] for d in _of(files, "datasets/"))
    assert all(c["dataset_uuid"] in datasets for c in _of(files, "charts/"))
    dashboard = _of(files, "dashboards/")[0]
    placed = {
        n["meta"]["uuid"]
        for n in dashboard["position"].values()
        if isinstance(n, dict) and n.get("type") == "CHART"
    }
    assert placed == {c["uuid"] for c in _of(files, "charts/")}
    table_names = [d["table_name"] for d in _of(files, "datasets/")]
    assert len(table_names) == len(set(table_names))  # Superset's SQLite metadata: UNIQUE(table_name)


def test_database_has_extra_and_no_password(files: dict[str, dict]) -> None:
    database = _of(files, "databases/")[0]
    assert (
        database["extra"] == {}
        and database["sqlalchemy_uri"] == "postgresql+psycopg2://superset_ro@db:5432/airqino"
    )
    with pytest.raises(ConfigError, match="must not contain a password"):
        bundle_files(load_source(SOURCE), [], "postgresql+psycopg2://superset_ro:secret@db/airqino")


def test_datasets_take_their_columns_from_the_serving_tables(files: dict[str, dict]) -> None:
    datasets = {d["table_name"]: d for d in _of(files, "datasets/")}
    headline = {c["column_name"]: c for c in datasets["station_headline"]["columns"]}  # a physical dataset
    assert headline["pm25_last_valid_ts"]["type"] == "TIMESTAMP WITH TIME ZONE" and "published_at" in headline
    assert headline["pm25_complete_days_30d"]["type"] == "BIGINT" and not datasets["station_headline"]["sql"]
    # a virtual one: columns_from its serving table, days_ago from the YAML
    daily = datasets["daily_air_quality"]
    columns = {c["column_name"]: c for c in daily["columns"]}
    assert columns["day"]["type"] == "DATE" and columns["day"]["is_dttm"] is True
    assert columns["pm25_mean"]["type"] == "DOUBLE PRECISION" and columns["days_ago"]["type"] == "INTEGER"
    assert (
        columns["station_name"]["verbose_name"] == "Station"
    )  # from the YAML, merged into the physical column
    assert daily["schema"] == "airqino" and daily["main_dttm_col"] == "day"
    assert "- d.day AS days_ago" in daily["sql"]


def test_the_forecast_charts_read_the_last_48_hours_through_a_virtual_dataset(files: dict[str, dict]) -> None:
    recent = next(d for d in _of(files, "datasets/") if d["table_name"] == "forecast_vs_observed_48h")
    assert "FROM airqino.forecast_vs_observed" in recent["sql"] and "interval '48 hours'" in recent["sql"]
    assert "columns_from" not in recent  # not a Superset key
    columns = {c["column_name"]: c for c in recent["columns"]}
    assert columns["ts"]["is_dttm"] is True and columns["observed"]["type"] == "DOUBLE PRECISION"
    assert "published_at" not in columns  # the SELECT does not return it
    assert columns["station_name"]["verbose_name"] == "Station"


def test_a_virtual_dataset_naming_an_unknown_serving_table_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "superset"
    shutil.copytree(SOURCE, source)
    path = source / "datasets" / "forecast_vs_observed_48h.yaml"
    path.write_text(
        path.read_text().replace("columns_from: forecast_vs_observed", "columns_from: forecast_vs")
    )
    tables = serving_tables(load_project(REPO_ROOT))
    with pytest.raises(
        ConfigError, match=r"forecast_vs_observed_48h.yaml: columns_from 'forecast_vs' is not a serving"
    ):
        bundle_files(load_source(source), tables, "postgresql+psycopg2://superset_ro@db:5432/airqino")


def test_every_chart_has_a_supported_viz_and_a_saved_query(files: dict[str, dict]) -> None:
    for chart in _of(files, "charts/"):
        assert chart["viz_type"] in SUPPORTED_VIZ
        query_context = json.loads(chart["query_context"])
        query = query_context["queries"][0]
        assert query["columns"] or query["metrics"], chart["slice_name"]
        assert query_context["form_data"]["viz_type"] == chart["viz_type"]


def test_line_chart_query_groups_by_day_and_station_with_incomplete_days_apart(
    files: dict[str, dict],
) -> None:
    chart = files["charts/daily_pm25.yaml"]
    query = json.loads(chart["query_context"])["queries"][0]
    assert query["columns"][0] == {
        "timeGrain": "P1D", "columnType": "BASE_AXIS", "sqlExpression": "day", "label": "day", "expressionType": "SQL"
    }  # fmt: skip
    assert query["columns"][1:] == ["station_name"]
    assert query["metrics"] == ["PM2.5 complete day", "PM2.5 incomplete day"]
    who = chart["params"]["annotation_layers"][0]
    assert (who["annotationType"], who["value"]) == ("FORMULA", "15")


def test_native_filters_target_station_names_and_default_to_the_last_90_days(files: dict[str, dict]) -> None:
    dashboard = _of(files, "dashboards/")[0]
    ids = {n["meta"]["uuid"]: n["meta"]["chartId"] for n in dashboard["position"].values() if isinstance(n, dict) and n.get("type") == "CHART"}  # fmt: skip
    station, days, date_range = dashboard["metadata"]["native_filter_configuration"]
    stations_dataset = next(d for d in _of(files, "datasets/") if d["table_name"] == "stations")
    assert station["filterType"] == "filter_select"
    assert station["targets"] == [
        {"column": {"name": "station_name"}, "datasetUuid": stations_dataset["uuid"]}
    ]
    assert days["filterType"] == "filter_range" and days["targets"][0]["column"] == {"name": "days_ago"}
    assert days["defaultDataMask"]["extraFormData"]["filters"] == [
        {"col": "days_ago", "op": ">=", "val": 0},
        {"col": "days_ago", "op": "<=", "val": 89},
    ]
    undated = sorted(ids[files[f"charts/{name}.yaml"]["uuid"]] for name in
                     ("headline", "forecast_pm25", "forecast_co", "forecast_skill", "stations"))  # fmt: skip
    assert date_range["filterType"] == "filter_time"
    assert sorted(date_range["scope"]["excluded"]) == sorted(days["scope"]["excluded"]) == undated


def test_aqi_categories_have_the_epa_colours(files: dict[str, dict]) -> None:
    colours = _of(files, "dashboards/")[0]["metadata"]["label_colors"]
    assert colours["Good"] == "#00E400" and colours["Unhealthy for Sensitive Groups"] == "#FF7E00"
    assert files["charts/aqi_categories.yaml"]["params"]["metrics"][:2] == ["Good", "Moderate"]


def test_every_dataset_behind_the_station_filter_has_a_station_name(files: dict[str, dict]) -> None:
    for dataset in _of(files, "datasets/"):
        assert "station_name" in {c["column_name"] for c in dataset["columns"]}, dataset["table_name"]


def test_a_chart_naming_an_unknown_column_fails_with_its_file(tmp_path: Path) -> None:
    source = tmp_path / "superset"
    shutil.copytree(SOURCE, source)
    chart_file = source / "charts" / "daily_co.yaml"
    chart = yaml.safe_load(chart_file.read_text())
    chart["params"]["groupby"] = ["station"]
    chart_file.write_text(yaml.safe_dump(chart))

    with pytest.raises(ConfigError, match=r"daily_co\.yaml: station not in dataset daily_air_quality"):
        build_bundle(source, tmp_path / "b.zip", serving_tables(load_project(REPO_ROOT)))


def test_a_chart_naming_an_unknown_dataset_fails_with_its_file(tmp_path: Path) -> None:
    source = tmp_path / "superset"
    shutil.copytree(SOURCE, source)
    (source / "datasets" / "stations.yaml").unlink()
    with pytest.raises(ConfigError, match=r"stations\.yaml: dataset 'stations' is not in"):
        load_source(source)


def test_zip_has_one_top_folder(tmp_path: Path) -> None:
    path = build_bundle(SOURCE, tmp_path / "bundle.zip", serving_tables(load_project(REPO_ROOT)))
    with zipfile.ZipFile(path) as archive:
        assert {name.split("/")[0] for name in archive.namelist()} == {"airqino_dashboard"}


def test_dsn_becomes_a_superset_uri_and_loses_its_password_for_the_bundle() -> None:
    uri = dsn_to_sqlalchemy_uri("host=db port=5433 dbname=airqino user=superset_ro password=p@ss")
    assert uri == "postgresql+psycopg2://superset_ro:p%40ss@db:5433/airqino"
    assert without_password(uri) == "postgresql+psycopg2://superset_ro@db:5433/airqino"


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql+psycopg2://superset_ro@db:5432/airqino?password=secret",
        "postgresql+psycopg2://superset_ro@db:5432/airqino?sslmode=require&PassWord=secret",
        "postgresql+psycopg2://superset_ro:secret@db:5432/airqino?sslpassword=secret&sslmode=require",
    ],
)
def test_a_password_in_the_query_never_reaches_the_bundle(uri: str) -> None:
    from elt.publish.uri import has_password

    with pytest.raises(ConfigError, match="must not contain a password"):
        bundle_files(load_source(SOURCE), [], uri)
    stripped = without_password(uri)
    assert has_password(uri) and not has_password(stripped) and "secret" not in stripped
    assert stripped.startswith("postgresql+psycopg2://superset_ro@db:5432/airqino")
    if "sslmode" in uri:
        assert "sslmode=require" in stripped
    files = bundle_files(load_source(SOURCE), serving_tables(load_project(REPO_ROOT)), stripped)
    assert "secret" not in str(files)


def test_each_station_keeps_its_colour_and_its_secondary_series_are_lighter(files: dict[str, dict]) -> None:
    colours = _of(files, "dashboards/")[0]["metadata"]["label_colors"]
    assert colours["PM2.5 complete day, SMART188"] == colours["Observed, SMART188"] == "#1F77B4"
    assert colours["PM2.5 complete day, SMART189"] == "#FF7F0E"  # the next palette colour
    assert colours["PM2.5 incomplete day, SMART188"] == "#A5C9E1"  # 40 % of the colour, the rest white
    assert colours["Forecast +2 h, SMART189"] not in (colours["Forecast +1 h, SMART189"], "#FF7F0E")
