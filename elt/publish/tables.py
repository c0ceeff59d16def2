"""The serving tables ``elt publish`` writes to PostgreSQL: which collection, which columns, which key.

Columns, types and keys come from the models' ``columns`` and ``unique_key`` in ``aggregations/`` (one table
per model, same name). What publishing adds on top lives here: which marts are published, the time window of
the big ones, indexes, and two serving conventions:

- a ``string`` column named ``day`` (a local ``YYYY-MM-DD``) becomes a PostgreSQL ``date``, so Superset can use
  it as a time axis;
- a table keyed by ``station_id`` without ``station_name`` gets one (from ``config/elt.yml``), so one dashboard
  filter on the station name fits every chart.

``forecasts`` is written by ``elt forecast``, not by a model, so its columns are declared below from the
collection contract; the same declarations stand in for any model that is not (yet) in ``aggregations/``.
``stations`` comes from ``config/elt.yml``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from elt.config import Project
from elt.errors import ModelError

log = logging.getLogger(__name__)

#: PostgreSQL type of each column type (the models' vocabulary plus ``date``).
PG_TYPES: dict[str, str] = {
    "string": "text",
    "number": "double precision",
    "integer": "bigint",
    "boolean": "boolean",
    "datetime": "timestamptz",
    "date": "date",
    "object": "jsonb",
    "array": "jsonb",
}


@dataclass(frozen=True)
class Column:
    """One column of a serving table."""

    name: str
    type: str
    description: str = ""

    @property
    def pg_type(self) -> str:
        """The PostgreSQL type of this column."""
        return PG_TYPES[self.type]


@dataclass(frozen=True)
class ServingTable:
    """A PostgreSQL copy of one mart (or of the stations config when ``collection`` is None).

    ``window_field``/``window_days``: only documents whose field is within that many days of the newest value
    are published (older rows are deleted from PostgreSQL), measured on data time, not wall-clock time, so a
    backfill or a demo on old data publishes the same window.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    collection: str | None = None
    window_field: str | None = None
    window_days: int | None = None
    required: bool = False
    description: str = ""
    indexes: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    #: Where the columns came from: "model", "contract" (declared here) or "config".
    origin: str = "contract"

    @property
    def column_names(self) -> list[str]:
        """Names of the data columns, in table order."""
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class PublishSpec:
    """Which mart is published and how (the columns come from its model)."""

    name: str
    required: bool = False
    window_field: str | None = None
    window_days: int | None = None
    indexes: tuple[tuple[str, ...], ...] = ()


#: The published marts, in publishing order. Required ones must exist in MongoDB (run `elt transform`).
PUBLISHED: tuple[PublishSpec, ...] = (
    PublishSpec("daily_sensor_averages", required=True, indexes=(("day",),)),
    PublishSpec("station_freshness", required=True),
    PublishSpec("stg_airqino_hourly", required=True, window_field="ts", window_days=30, indexes=(("ts",),)),
    PublishSpec("forecasts", window_field="target_ts", window_days=30, indexes=(("target_ts",),)),
    PublishSpec("forecast_verification", indexes=(("day",),)),
    # the dashboard's marts (aggregations/marts/, tag dashboard); skipped until `elt transform` has built them
    PublishSpec("daily_air_quality", indexes=(("day",),)),
    PublishSpec("daily_valid_hours", indexes=(("day",),)),
    PublishSpec("station_headline"),
    PublishSpec("forecast_vs_observed_48h"),
    PublishSpec("forecast_skill_7d"),
)

_STATION = Column("station_id", "string", "AirQino station id")
_STATION_NAME = Column("station_name", "string", "Station name from config/elt.yml")

#: Columns and keys of the collections that are not models (forecasts) or whose model is absent.
CONTRACT_TABLES: dict[str, tuple[tuple[Column, ...], tuple[str, ...]]] = {
    "forecasts": (
        (
            _STATION,
            Column("pollutant", "string", "co or pm25"),
            Column("issued_at", "datetime", "Forecast origin: the last observed hour (UTC)"),
            Column("target_ts", "datetime", "Forecast hour (UTC)"),
            Column("horizon_h", "integer", "Hours ahead (1 or 2)"),
            Column("value", "number", "Forecast value (mg/m3 for co, ug/m3 for pm25)"),
            Column("model", "string", "Model name"),
            Column("model_version", "string", "Model version"),
        ),
        ("station_id", "pollutant", "issued_at", "horizon_h"),
    ),
    "forecast_verification": (
        (
            _STATION,
            Column("pollutant", "string", "co or pm25"),
            Column("horizon_h", "integer", "Hours ahead"),
            Column("day", "string", "Local day"),
            Column("n", "integer", "Verified forecasts"),
            Column("mae", "number", "Mean absolute error of the model"),
            Column("mae_persistence", "number", "Mean absolute error of persistence"),
            Column("skill", "number", "1 - mae / mae_persistence"),
        ),
        ("station_id", "pollutant", "horizon_h", "day"),
    ),
}

STATIONS_TABLE = ServingTable(
    name="stations",
    columns=(
        _STATION,
        Column("station_name", "string", "Station name"),
        Column("timezone", "string", "IANA timezone"),
        Column("lat", "number", "Latitude (WGS84)"),
        Column("lon", "number", "Longitude (WGS84)"),
        Column("enabled", "boolean", "Loaded by elt"),
    ),
    key=("station_id",),
    description="Stations from config/elt.yml.",
    origin="config",
)


def _serving_columns(columns: tuple[Column, ...], key: tuple[str, ...]) -> tuple[Column, ...]:
    """Apply the serving conventions: ``day`` strings as dates, a station name beside every station id."""
    out = [replace(c, type="date") if c.name == "day" and c.type == "string" else c for c in columns]
    names = [c.name for c in out]
    if "station_id" in key and "station_name" not in names:
        out.insert(names.index("station_id") + 1, _STATION_NAME)
    return tuple(out)


def _model_columns(project: Project) -> dict[str, tuple[tuple[Column, ...], tuple[str, ...], str]]:
    """(columns, key, description) of every model with documented columns and a unique_key."""
    if not (project.project_dir / "aggregations").is_dir():
        log.warning("no aggregations/ folder: publishing with the column contracts of elt/publish/tables.py")
        return {}
    from elt.models.project import load_models

    models: dict[str, tuple[tuple[Column, ...], tuple[str, ...], str]] = {}
    for node in load_models(project).models.values():
        spec = node.spec
        if not spec.columns or not spec.unique_key:
            continue
        columns = tuple(Column(c.name, c.type or "string", c.description) for c in spec.columns)
        models[node.name] = (columns, tuple(spec.unique_key), spec.description or "")
    return models


def serving_tables(project: Project) -> list[ServingTable]:
    """Every serving table, its columns taken from the models (contracts for forecasts), then ``stations``."""
    models = _model_columns(project)
    tables = []
    for spec in PUBLISHED:
        if spec.name in models:
            columns, key, description = models[spec.name]
            origin = "model"
        elif spec.name in CONTRACT_TABLES:
            (columns, key), description, origin = CONTRACT_TABLES[spec.name], "", "contract"
        else:
            raise ModelError(
                f"aggregations/: no model '{spec.name}' with columns and unique_key; `elt publish` needs them"
            )
        missing = [k for k in key if k not in [c.name for c in columns]]
        if missing:
            raise ModelError(f"model '{spec.name}': unique_key {missing} is not among its documented columns")
        tables.append(
            ServingTable(
                name=spec.name,
                columns=_serving_columns(columns, key),
                key=key,
                collection=spec.name,
                window_field=spec.window_field,
                window_days=spec.window_days,
                required=spec.required,
                description=description,
                indexes=spec.indexes,
                origin=origin,
            )
        )
    tables.append(STATIONS_TABLE)
    return tables
