"""``elt publish``: copy the marts from MongoDB (the system of record) into PostgreSQL for Superset.

MongoDB is only read. Each serving table is rewritten in its own transaction and only rows whose content hash
changed are written, so publishing twice writes nothing the second time.

Inside ``elt run``, publish is driven by the run's change records (``elt.models.changes``): a table whose
collection did not change is not touched, a collection rebuilt in full is copied in full, and otherwise only
the documents of the changed scopes are read (index-friendly queries) and upserted; rows that left a scope
are deleted within that scope (when the scope's fields are serving columns), and windowed tables drop the rows
that fell out of their window.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from pymongo.database import Database

from elt.config import Project
from elt.errors import ConfigError, PublishError
from elt.publish import postgres
from elt.publish.tables import Column, ServingTable, serving_tables
from elt.utc import as_utc

if TYPE_CHECKING:
    from elt.models.changes import RunChanges

log = logging.getLogger(__name__)


@dataclass
class PublishResult:
    """What ``elt publish`` did, table by table."""

    target: str
    tables: list[postgres.TableWrite] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Tables not touched because their collection did not change in the run (change-driven publish only).
    unchanged: list[str] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        """Rows inserted, updated or deleted in PostgreSQL."""
        return sum(t.inserted + t.updated + t.deleted for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no secrets: the target is ``user@host:port/db``)."""
        return {
            "target": self.target,
            "rows_written": self.rows_written,
            "seconds": round(self.seconds, 3),
            "tables": [asdict(t) for t in self.tables],
            "skipped": self.skipped,
            "unchanged": self.unchanged,
        }


def convert_value(column: Column, value: Any) -> Any:
    """A MongoDB value as the Python value of the column's type (None stays None, NaN becomes None)."""
    if value is None:
        return None
    try:
        if column.type == "string":
            return str(value)
        if column.type == "date":
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        if column.type == "datetime":
            return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))
        if column.type == "number":
            number = float(value)
            return None if math.isnan(number) else number
        if column.type == "integer":
            number = float(value)
            return None if math.isnan(number) else int(round(number))
        if column.type == "boolean":
            return bool(value)
        if column.type in ("object", "array"):
            return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise PublishError(f"column {column.name}: cannot read {value!r} as {column.type} ({exc})") from None
    raise PublishError(f"column {column.name}: unknown type {column.type!r}")


def _hash_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def row_hash(values: list[Any]) -> str:
    """sha256 of the row's values in column order (what decides whether a row changed)."""
    payload = json.dumps([_hash_text(v) for v in values], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def table_row(table: ServingTable, document: dict[str, Any]) -> list[Any]:
    """One PostgreSQL row (data columns then row_hash) from one MongoDB document."""
    values = [convert_value(column, document.get(column.name)) for column in table.columns]
    return [*values, row_hash(values)]


def _window_filter(db: Database, table: ServingTable) -> dict[str, Any]:
    if not table.window_field or not table.window_days:
        return {}
    newest = db[table.collection].find_one(
        {table.window_field: {"$ne": None}}, {table.window_field: 1}, sort=[(table.window_field, -1)]
    )
    if newest is None:
        return {}
    start = as_utc(newest[table.window_field]) - timedelta(days=table.window_days)
    return {table.window_field: {"$gt": start}}


def _documents(
    project: Project, table: ServingTable, cursor: Iterator[dict[str, Any]]
) -> Iterator[list[Any]]:
    names = {station.id: station.name for station in project.config.stations}
    for document in cursor:
        if "station_name" in table.column_names and document.get("station_name") is None:
            # forecasts carry only the id; dashboards filter every chart by station name
            document["station_name"] = names.get(str(document.get("station_id")))
        yield table_row(table, document)


def scoped_rows(
    project: Project,
    db: Database,
    table: ServingTable,
    scopes: list[dict[str, Any]],
    window_start: datetime | None,
) -> Iterator[list[Any]]:
    """The rows of ``table`` in the changed ``scopes`` (one index-friendly query each), inside its window.

    Scopes may overlap (two steps of one run changed the same relation, e.g. the transform and the forecast
    step's refresh of the forecast marts): a document is yielded once, by its key.
    """
    projection = {"_id": 0, **{name: 1 for name in table.column_names}}
    seen: set[tuple[Any, ...]] = set()

    def first_time(document: dict[str, Any]) -> bool:
        key = tuple(document.get(name) for name in table.key)
        if key in seen:
            return False
        seen.add(key)
        return True

    for scope in scopes:
        cursor = db[table.collection].find(scope, projection, batch_size=2000)  # type: ignore[index]
        if window_start is not None and table.window_field:
            field_name = table.window_field
            cursor = (
                d for d in cursor if d.get(field_name) is not None and as_utc(d[field_name]) > window_start
            )
        yield from _documents(project, table, (d for d in cursor if first_time(d)))


def source_rows(project: Project, db: Database, table: ServingTable) -> Iterator[list[Any]]:
    """The rows of one serving table, read from its MongoDB collection (or the config for ``stations``)."""
    if table.collection is None:
        for station in project.config.stations:
            yield table_row(
                table,
                {
                    "station_id": station.id,
                    "station_name": station.name,
                    "timezone": station.timezone,
                    "lat": station.lat,
                    "lon": station.lon,
                    "enabled": station.enabled,
                },
            )
        return
    projection = {"_id": 0, **{name: 1 for name in table.column_names}}
    cursor = db[table.collection].find(_window_filter(db, table), projection, batch_size=2000)
    yield from _documents(project, table, cursor)


def serving_dsn(project: Project, dsn: str | None = None) -> str:
    """The DSN to publish to: ``dsn`` if given, else SERVING_DSN / the target's serving_dsn."""
    if dsn:
        return dsn
    if project.target.serving_dsn is None:
        raise ConfigError(
            f"no PostgreSQL to publish to: set SERVING_DSN (e.g. postgresql://elt@localhost:5432/airqino, "
            f"password in SERVING_DSN or PGPASSWORD) or serving_dsn in targets.{project.target_name} of "
            "config/profiles.yml"
        )
    return project.target.serving_dsn.get_secret_value()


def publish_marts(
    project: Project,
    db: Database,
    dsn: str | None = None,
    rebuild: bool = False,
    changes: RunChanges | None = None,
) -> PublishResult:
    """Copy the marts of ``db`` into the serving PostgreSQL; each table in one transaction.

    ``changes`` (a run's change records) limits the copy to what that run changed (see the module docstring);
    None copies everything. Raises PublishError (naming the PostgreSQL host, never the password) when the
    database cannot be reached or a table cannot be written; MongoDB is never modified.
    """
    started = time.monotonic()
    dsn = serving_dsn(project, dsn)
    tables = serving_tables(project)
    present = set(db.list_collection_names())
    missing = [t.collection for t in tables if t.required and t.collection not in present]
    if missing:
        raise PublishError(
            f"MongoDB database '{db.name}' has no {', '.join(missing)}: run `elt transform` before `elt publish`"
        )
    result = PublishResult(target=postgres.describe_dsn(dsn))
    with postgres.connect(dsn) as conn:
        for table in tables:
            if table.collection is not None and table.collection not in present:
                log.info("%s: no such collection yet, skipped", table.collection)
                result.skipped.append(table.name)
                continue
            scopes = None
            if changes is not None and table.collection is not None and not rebuild:
                change = changes.get(table.collection)
                if change is None and postgres.table_exists(conn, table):
                    result.unchanged.append(table.name)
                    continue
                if change is not None and not change.full:
                    scopes = change.scopes
            result.tables.append(_publish_table(conn, project, db, table, rebuild, scopes))
    result.seconds = time.monotonic() - started
    return result


def _scopes_fit(table: ServingTable, scopes: list[dict[str, Any]]) -> bool:
    """Whether every scope filters on serving columns only, with equalities and ``$gte``/``$lte`` ranges."""
    names = set(table.column_names)
    for scope in scopes:
        for name, value in scope.items():
            if name not in names:
                return False
            if isinstance(value, dict) and not set(value) <= {"$gte", "$lte"}:
                return False
    return True


def _scope_values(table: ServingTable, scope: dict[str, Any]) -> dict[str, Any]:
    """A scope with its values converted to the serving columns' Python types (``day`` strings to dates)."""
    columns = {c.name: c for c in table.columns}
    out: dict[str, Any] = {}
    for name, value in scope.items():
        if isinstance(value, dict):
            out[name] = {op: convert_value(columns[name], v) for op, v in value.items()}
        else:
            out[name] = convert_value(columns[name], value)
    return out


def _window_start(conn: psycopg.Connection, db: Database, table: ServingTable,
                  scopes: list[dict[str, Any]]) -> datetime | None:  # fmt: skip
    """Start of a windowed table's window in a scoped publish: newest of what is served and of the changed
    documents (read per scope, index-friendly), minus the window."""
    if not table.window_field or not table.window_days:
        return None
    newest = postgres.max_value(conn, table, table.window_field)
    for scope in scopes:
        for doc in db[table.collection].find(scope, {table.window_field: 1, "_id": 0}):  # type: ignore[index]
            value = doc.get(table.window_field)
            if value is not None and (newest is None or as_utc(value) > newest):
                newest = as_utc(value)
    return newest - timedelta(days=table.window_days) if newest is not None else None


def _publish_table(
    conn: psycopg.Connection,
    project: Project,
    db: Database,
    table: ServingTable,
    rebuild: bool,
    scopes: list[dict[str, Any]] | None = None,
) -> postgres.TableWrite:
    started = time.monotonic()
    try:
        with conn.transaction():
            created = postgres.prepare_table(conn, table, rebuild)
            if scopes is None or created:
                rows, inserted, updated, deleted = postgres.upsert_rows(
                    conn, table, source_rows(project, db, table)
                )
            else:
                window_start = _window_start(conn, db, table, scopes)
                # rows that left a scope are deleted when the scope is expressible in serving columns; an
                # incremental model's scoped change never deletes documents anyway (only full builds do, and
                # those are published in full)
                within = [_scope_values(table, s) for s in scopes] if _scopes_fit(table, scopes) else []
                rows, inserted, updated, deleted = postgres.upsert_rows(
                    conn,
                    table,
                    scoped_rows(project, db, table, scopes, window_start),
                    within=within,
                    older_than=window_start,
                )
    except (psycopg.Error, PublishError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PublishError(
            f"publishing {postgres.SERVING_SCHEMA}.{table.name} failed ({type(exc).__name__}: {reason}); "
            "the table was left as it was"
        ) from None
    write = postgres.TableWrite(table.name, rows, inserted, updated, deleted, created)
    log.info(
        "%s.%s: %d rows, %d inserted, %d updated, %d deleted (%.2f s)",
        postgres.SERVING_SCHEMA,
        table.name,
        rows,
        inserted,
        updated,
        deleted,
        time.monotonic() - started,
    )
    return write
