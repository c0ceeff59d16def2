"""Build a Superset 6.1 import bundle (ZIP) from the readable YAML in ``config/superset/``.

What the YAML leaves to this module, so the files stay short and cannot drift from the data:

- physical datasets get their columns from the serving tables ``elt publish`` writes (``elt/publish/tables.py``);
- charts name their dataset (``dataset: daily_sensor_averages``) instead of repeating its UUID, and get a
  ``query_context`` derived from their params (Superset's chart data API ``/api/v1/chart/<id>/data/``, reports
  and thumbnails need one; the browser builds its own from the params);
- the dashboard's ``layout`` (rows of charts) and ``filters`` become Superset's ``position`` and native filter
  configuration. Files in the bundle link only by UUID.

The database URI in the bundle never carries a password: ``elt dashboard import`` sets the real one afterwards.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from elt.errors import ConfigError
from elt.publish.superset_charts import BUNDLE_VERSION, SUPPORTED_VIZ, chart_config, check_chart_references
from elt.publish.tables import ServingTable
from elt.publish.uri import has_password

#: Superset column type of each serving column type.
SUPERSET_TYPES = {
    "string": "TEXT",
    "number": "DOUBLE PRECISION",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
    "datetime": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "object": "JSONB",
    "array": "JSONB",
}


@dataclass
class BundleSource:
    """The parsed ``config/superset/`` directory."""

    root: Path
    database: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    charts: dict[str, dict[str, Any]]
    dashboard: dict[str, Any]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _require(data: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    missing = [key for key in keys if key not in data]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}")


def load_source(root: Path) -> BundleSource:
    """Read and cross-check the dashboard YAML (every reference resolves, no password in the URI)."""
    if not (root / "dashboard.yaml").is_file():
        raise ConfigError(
            f"{root}: no dashboard.yaml (expected the Superset bundle source in config/superset/)"
        )
    database = _read(root / "database.yaml")
    _require(database, ("database_name", "uuid", "sqlalchemy_uri"), root / "database.yaml")
    if has_password(database["sqlalchemy_uri"]):
        raise ConfigError(f"{root / 'database.yaml'}: sqlalchemy_uri contains a password; remove it")
    datasets: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "datasets").glob("*.yaml")):
        dataset = _read(path)
        _require(dataset, ("table_name", "uuid"), path)
        if dataset["table_name"] in datasets:
            raise ConfigError(
                f"{path}: table_name {dataset['table_name']} is used twice (Superset needs unique names)"
            )
        dataset["_path"] = path
        datasets[dataset["table_name"]] = dataset
    charts: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "charts").glob("*.yaml")):
        chart = _read(path)
        _require(chart, ("slice_name", "uuid", "dataset", "viz_type", "params"), path)
        if chart["dataset"] not in datasets:
            raise ConfigError(
                f"{path}: dataset '{chart['dataset']}' is not in {root / 'datasets'} ({', '.join(datasets)})"
            )
        if chart["viz_type"] not in SUPPORTED_VIZ:
            raise ConfigError(
                f"{path}: viz_type '{chart['viz_type']}' is not one of {', '.join(SUPPORTED_VIZ)}"
            )
        chart["_path"] = path
        charts[path.stem] = chart
    dashboard = _read(root / "dashboard.yaml")
    _require(dashboard, ("dashboard_title", "uuid", "slug", "layout"), root / "dashboard.yaml")
    for row in dashboard["layout"]:
        for cell in row:
            if cell.get("chart") not in charts:
                raise ConfigError(
                    f"{root / 'dashboard.yaml'}: layout names unknown chart '{cell.get('chart')}'"
                )
    for spec in dashboard.get("filters", []):
        unknown = [name for name in spec.get("exclude", []) if name not in charts]
        if unknown or (spec.get("dataset") and spec["dataset"] not in datasets):
            raise ConfigError(
                f"{root / 'dashboard.yaml'}: filter '{spec.get('name')}' names unknown {unknown or spec['dataset']}"
            )
    return BundleSource(root, database, datasets, charts, dashboard)


def dataset_config(
    dataset: dict[str, Any], database: dict[str, Any], tables: list[ServingTable]
) -> dict[str, Any]:
    """The bundle file of one dataset: physical columns from its serving table (a virtual dataset, one with
    ``sql``, takes them from the table named by ``columns_from``, if any), then the YAML's own columns."""
    columns: list[dict[str, Any]] = []
    virtual = bool(dataset.get("sql"))
    table_name = dataset.get("columns_from") if virtual else dataset["table_name"]
    table = {t.name: t for t in tables}.get(table_name) if table_name else None
    if table is not None:
        for column in table.columns:
            columns.append(
                {"column_name": column.name, "type": SUPERSET_TYPES[column.type],
                 "is_dttm": column.type in ("date", "datetime"), "description": column.description or None}
            )  # fmt: skip
        if not virtual:
            columns.append(
                {"column_name": "published_at", "type": "TIMESTAMP WITH TIME ZONE", "is_dttm": True}
            )
    elif table_name is not None:
        what = "columns_from" if virtual else "table_name"
        raise ConfigError(
            f"{dataset['_path']}: {what} '{table_name}' is not a serving table (a model or source with publish:)"
            + ("" if virtual else " and the dataset has no sql")
        )
    by_name = {c["column_name"]: c for c in columns}
    for extra in dataset.get("columns", []):
        if extra["column_name"] in by_name:  # e.g. a verbose_name for a physical column
            by_name[extra["column_name"]].update(extra)
        else:
            columns.append(dict(extra))
    for column in columns:
        column.setdefault("is_dttm", False)
        column.setdefault("groupby", True)
        column.setdefault("filterable", True)
        column.setdefault("is_active", True)
    config = {
        key: value
        for key, value in dataset.items()
        if not key.startswith("_") and key not in ("columns", "metrics", "columns_from")
    }
    config.update(
        {
            "columns": columns,
            "metrics": [dict(m) for m in dataset.get("metrics", [])],
            "database_uuid": database["uuid"],
            "version": BUNDLE_VERSION,
            "extra": dataset.get("extra") or {},
        }
    )
    config.setdefault("schema", None)
    config.setdefault("sql", None)
    config.setdefault("params", None)
    return config


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _shade(colour: str, strength: float) -> str:
    """``colour`` (#RRGGBB) mixed with white: strength 1 keeps it, lower values fade it."""
    rgb = [int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(c * strength + 255 * (1 - strength)):02X}" for c in rgb)


def label_colours(spec: dict[str, Any], stations: Sequence[str] = ()) -> dict[str, str]:
    """Series name → colour: the fixed ``label_colors`` plus, per station, the ``station_colors`` templates.

    Each station gets the next colour of the palette; every series template (e.g. "Forecast +1 h, {station}")
    gets that colour faded by its strength, so a station keeps its hue in every chart and the secondary series
    of a station (incomplete days, forecasts) are lighter versions of it.
    """
    colours = dict(spec.get("label_colors") or {})
    station_colours = spec.get("station_colors") or {}
    palette = station_colours.get("palette") or []
    for index, station in enumerate(stations):
        if not palette:
            break
        base = palette[index % len(palette)]
        for template, strength in (station_colours.get("series") or {}).items():
            colours[template.format(station=station)] = _shade(base, float(strength))
    return colours


def dashboard_config(source: BundleSource, stations: Sequence[str] = ()) -> dict[str, Any]:
    """The bundle file of the dashboard: grid position from ``layout``, native filters from ``filters``,
    series colours from ``label_colors`` and ``station_colors`` (for ``stations``, the configured names)."""
    spec = source.dashboard
    chart_ids = {name: index for index, name in enumerate(sorted(source.charts), start=1)}
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": spec["dashboard_title"]}},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
    }
    for row_number, row in enumerate(spec["layout"], start=1):
        row_id = f"ROW-{row_number}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }  # fmt: skip
        for cell in row:
            chart = source.charts[cell["chart"]]
            chart_id = f"CHART-{cell['chart']}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {
                "type": "CHART", "id": chart_id, "children": [], "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {"chartId": chart_ids[cell["chart"]], "uuid": chart["uuid"], "sliceName": chart["slice_name"],
                         "width": cell.get("width", 6), "height": cell.get("height", 50)},
            }  # fmt: skip
    native_filters = []
    for filter_spec in spec.get("filters", []):
        native: dict[str, Any] = {
            "id": f"NATIVE_FILTER-{_slug(filter_spec['name'])}",
            "name": filter_spec["name"],
            "filterType": filter_spec["type"],
            "type": "NATIVE_FILTER",
            "description": filter_spec.get("description", ""),
            "cascadeParentIds": [],
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "scope": {
                "rootPath": ["ROOT_ID"],
                "excluded": [chart_ids[n] for n in filter_spec.get("exclude", [])],
            },
            "controlValues": {"enableEmptyFilter": False},
            "targets": [{}],
        }
        if filter_spec["type"] in ("filter_select", "filter_range"):
            native["targets"] = [
                {
                    "column": {"name": filter_spec["column"]},
                    "datasetUuid": source.datasets[filter_spec["dataset"]]["uuid"],
                }
            ]
        if filter_spec["type"] == "filter_range" and filter_spec.get("default") is not None:
            low, high = filter_spec["default"]
            native["defaultDataMask"] = {
                "extraFormData": {
                    "filters": [
                        {"col": filter_spec["column"], "op": ">=", "val": low},
                        {"col": filter_spec["column"], "op": "<=", "val": high},
                    ]
                },
                "filterState": {"value": [low, high], "label": f"{low} ≤ x ≤ {high}"},
                "ownState": {},
            }
        if filter_spec["type"] == "filter_select":
            native["controlValues"].update(
                {"multiSelect": filter_spec.get("multi_select", True), "defaultToFirstItem": False,
                 "inverseSelection": False, "searchAllOptions": False}
            )  # fmt: skip
        native_filters.append(native)
    metadata = {
        "color_scheme": "",
        "refresh_frequency": 0,
        "expanded_slices": {},
        "label_colors": label_colours(spec, stations),
        "shared_label_colors": [],
        "timed_refresh_immune_slices": [],
        "cross_filters_enabled": False,
        "native_filter_configuration": native_filters,
    }
    return {
        "dashboard_title": spec["dashboard_title"],
        "description": spec.get("description"),
        "css": spec.get("css", ""),
        "slug": spec["slug"],
        "uuid": spec["uuid"],
        "published": spec.get("published", True),
        "position": position,
        "metadata": metadata,
        "version": BUNDLE_VERSION,
    }


def bundle_files(
    source: BundleSource,
    tables: list[ServingTable],
    database_uri: str | None = None,
    stations: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Every file of the bundle (path inside the ZIP → YAML content)."""
    database = {key: value for key, value in source.database.items() if not key.startswith("_")}
    if database_uri is not None:
        if has_password(database_uri):
            raise ConfigError("the database URI written into the bundle must not contain a password")
        database["sqlalchemy_uri"] = database_uri
    database.setdefault("extra", {})
    database["version"] = BUNDLE_VERSION
    db_folder = _slug(database["database_name"]).replace("-", "_")
    files: dict[str, dict[str, Any]] = {
        "metadata.yaml": {
            "version": BUNDLE_VERSION,
            "type": "Dashboard",
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        f"databases/{db_folder}.yaml": database,
    }
    for name, dataset in source.datasets.items():
        files[f"datasets/{db_folder}/{name}.yaml"] = dataset_config(dataset, database, tables)
    for name, chart in source.charts.items():
        dataset_file = files[f"datasets/{db_folder}/{chart['dataset']}.yaml"]
        check_chart_references(chart, dataset_file)
        files[f"charts/{name}.yaml"] = chart_config(chart, source.datasets[chart["dataset"]])
    files[f"dashboards/{source.dashboard['slug']}.yaml"] = dashboard_config(source, stations)
    return files


def build_bundle(
    root: Path,
    output: Path,
    tables: list[ServingTable],
    database_uri: str | None = None,
    stations: Sequence[str] = (),
) -> Path:
    """Write the ZIP bundle of ``root`` (``config/superset``) to ``output``; returns ``output``.

    ``tables`` are the serving tables (``elt.publish.tables.serving_tables``) giving the datasets' columns;
    ``stations`` the station names of config/elt.yml (their series colours).
    """
    files = bundle_files(load_source(root), tables, database_uri, stations)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            text = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
            archive.writestr(f"airqino_dashboard/{name}", text)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(buffer.getvalue())
    return output
