"""The serving tables ``elt publish`` writes to PostgreSQL: which collection, which columns, which key.

Everything comes from ``aggregations/``: a model (or a source collection in ``sources.yml``, e.g. ``forecasts``)
with a ``publish:`` block is one table of the same name; its documented ``columns`` (``type``) are the table's
columns, its ``unique_key`` the primary key, and the block says whether it is required, its time window and its
indexes (``elt.models.schema.PublishSpec``). What publishing adds on top lives here, two serving conventions:

- a ``string`` column named ``day`` (a local ``YYYY-MM-DD``) becomes a PostgreSQL ``date``, so Superset can use
  it as a time axis;
- a table keyed by ``station_id`` without ``station_name`` gets one (from ``config/elt.yml``), so one dashboard
  filter on the station name fits every chart;

and ``stations``, which comes from ``config/elt.yml``. Publishing order: the required tables, then the source
collections, then the models, the dashboard's (tag ``dashboard``) last; by name within each group.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from elt.config import Project
from elt.errors import ModelError
from elt.models.schema import ColumnSpec

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
    #: Where the columns came from: "model", "contract" (a source collection in sources.yml) or "config".
    origin: str = "contract"

    @property
    def column_names(self) -> list[str]:
        """Names of the data columns, in table order."""
        return [c.name for c in self.columns]


_STATION = Column("station_id", "string", "AirQino station id")
_STATION_NAME = Column("station_name", "string", "Station name from config/elt.yml")

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


def _columns(specs: list[ColumnSpec]) -> tuple[Column, ...]:
    return tuple(Column(c.name, c.type or "string", c.description) for c in specs)


def _published(project: Project) -> list[tuple[tuple[bool, int, bool, str], ServingTable]]:
    """(order, table) of every model and source collection with a ``publish:`` block."""
    from elt.models.project import load_models

    mp = load_models(project)
    found: list[tuple[tuple[bool, int, bool, str], ServingTable]] = []
    for origin, name, spec, tags in [
        *(("contract", n.collection, n.spec, []) for n in mp.sources.values()),
        *(("model", m.name, m.spec, m.spec.tags) for m in mp.models.values()),
    ]:
        publish = spec.publish
        if publish is None:
            continue
        key = tuple(spec.unique_key or ())
        window = publish.window
        table = ServingTable(
            name=name,
            columns=_serving_columns(_columns(spec.columns), key),
            key=key,
            collection=name,
            window_field=window.field if window else None,
            window_days=window.days if window else None,
            required=publish.required,
            description=spec.description or "",
            indexes=tuple(tuple(index) for index in publish.indexes),
            origin=origin,
        )
        found.append(((not publish.required, origin == "model", "dashboard" in tags, name), table))
    return found


def serving_tables(project: Project) -> list[ServingTable]:
    """Every serving table declared in ``aggregations/`` (``publish:`` blocks), in publishing order, then
    ``stations``."""
    tables = [table for _, table in sorted(_published(project), key=lambda pair: pair[0])]
    if not tables:
        raise ModelError(
            "aggregations/: no model or source has a publish: block; `elt publish` has nothing to copy"
        )
    return [*tables, STATIONS_TABLE]
