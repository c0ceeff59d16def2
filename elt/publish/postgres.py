"""PostgreSQL side of ``elt publish``: connect, create tables from their spec, upsert only changed rows.

Every table is written in one transaction: the incoming rows are copied into a temporary table, then one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE row_hash IS DISTINCT FROM excluded.row_hash`` writes the new and
changed rows only, and one ``DELETE`` removes rows that left the source (or the time window). Readers see
either the old or the new table, never a half-written one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from elt.errors import PublishError
from elt.publish.tables import ServingTable

log = logging.getLogger(__name__)

#: The PostgreSQL schema holding every serving table (grant read access on it to Superset's role).
SERVING_SCHEMA = "airqino"
#: Bookkeeping columns added to every serving table.
ROW_HASH = "row_hash"
PUBLISHED_AT = "published_at"


@dataclass(frozen=True)
class TableWrite:
    """What one table's publish changed in PostgreSQL."""

    table: str
    rows: int
    inserted: int
    updated: int
    deleted: int
    created: bool


def describe_dsn(dsn: str) -> str:
    """``user@host:port/dbname`` of a DSN (URL or key=value form), never its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable SERVING_DSN>"
    host = params.get("host") or params.get("hostaddr") or "localhost (unix socket)"
    port = params.get("port") or "5432"
    user = f"{params['user']}@" if params.get("user") else ""
    dbname = params.get("dbname") or "(default database)"
    return f"{user}{host}:{port}/{dbname}"


def _without_secret(message: str, dsn: str) -> str:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    return message.replace(str(password), "***") if password else message


def connect(dsn: str, connect_timeout_s: int = 10) -> psycopg.Connection:
    """A connection to the serving database, or a PublishError naming the host (never the password)."""
    try:
        # autocommit: every `with conn.transaction()` block is then a real transaction, not a savepoint
        return psycopg.connect(
            dsn, connect_timeout=connect_timeout_s, application_name="airqino-elt publish", autocommit=True
        )
    except (psycopg.Error, ValueError) as exc:
        reason = _without_secret(
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, dsn
        )
        raise PublishError(
            f"cannot connect to PostgreSQL at {describe_dsn(dsn)}: {reason}. "
            "Check SERVING_DSN (or the target's serving_dsn) and that the server is running; "
            "nothing was published and MongoDB was not changed."
        ) from None


def _ident(table: ServingTable) -> sql.Composed:
    return sql.Identifier(SERVING_SCHEMA, table.name)


def _existing_columns(conn: psycopg.Connection, table: ServingTable) -> list[tuple[str, str]] | None:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (SERVING_SCHEMA, table.name),
    ).fetchall()
    return [(name, data_type) for name, data_type in rows] or None


def _expected_columns(table: ServingTable) -> list[str]:
    return [*table.column_names, ROW_HASH, PUBLISHED_AT]


def _create_table(conn: psycopg.Connection, table: ServingTable) -> None:
    definitions = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in table.columns]
    definitions += [
        sql.SQL("{} text NOT NULL").format(sql.Identifier(ROW_HASH)),
        sql.SQL("{} timestamptz NOT NULL DEFAULT now()").format(sql.Identifier(PUBLISHED_AT)),
        sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.key))),
    ]
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(_ident(table), sql.SQL(", ").join(definitions)))
    for columns in table.indexes:
        conn.execute(
            sql.SQL("CREATE INDEX ON {} ({})").format(
                _ident(table), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        )
    if table.description:
        conn.execute(
            sql.SQL("COMMENT ON TABLE {} IS {}").format(_ident(table), sql.Literal(table.description))
        )
    for column in table.columns:
        if column.description:
            conn.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    _ident(table), sql.Identifier(column.name), sql.Literal(column.description)
                )
            )


def prepare_table(conn: psycopg.Connection, table: ServingTable, rebuild: bool) -> bool:
    """Create the table (dropping it first on ``rebuild`` or when its columns differ); True if (re)created."""
    # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: look first
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SERVING_SCHEMA,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SERVING_SCHEMA)))
    existing = _existing_columns(conn, table)
    if existing is not None and not rebuild:
        if [name for name, _ in existing] == _expected_columns(table):
            return False
        log.warning(
            "%s.%s has columns %s, the model expects %s: recreating it",
            SERVING_SCHEMA,
            table.name,
            [name for name, _ in existing],
            _expected_columns(table),
        )
    if existing is not None:
        conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(_ident(table)))
    _create_table(conn, table)
    return True


def table_exists(conn: psycopg.Connection, table: ServingTable) -> bool:
    """Whether the serving table exists."""
    return _existing_columns(conn, table) is not None


def max_value(conn: psycopg.Connection, table: ServingTable, column: str) -> Any:
    """The largest value of ``column`` in the serving table (None when empty)."""
    row = conn.execute(
        sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), _ident(table))
    ).fetchone()
    return row[0] if row else None


def _scope_condition(alias: str, scope: Mapping[str, Any]) -> sql.Composable:
    """SQL for one change scope: equalities and ``$gte``/``$lte`` ranges on columns of the table ``alias``."""
    parts: list[sql.Composable] = []
    operators = {"$gte": ">=", "$lte": "<=", "$gt": ">", "$lt": "<"}
    for name, value in scope.items():
        column = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))
        if isinstance(value, Mapping):
            for op, bound in value.items():
                parts.append(sql.SQL("{} {} {}").format(column, sql.SQL(operators[op]), sql.Literal(bound)))
        else:
            parts.append(sql.SQL("{} = {}").format(column, sql.Literal(value)))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE"))


def upsert_rows(
    conn: psycopg.Connection,
    table: ServingTable,
    rows: Iterable[Sequence[Any]],
    within: Sequence[Mapping[str, Any]] | None = None,
    older_than: Any = None,
) -> tuple[int, int, int, int]:
    """Write ``rows`` (data columns then row_hash) so the table equals them; (rows, inserted, updated, deleted).

    ``within`` (change scopes: equality/range filters on columns) makes ``rows`` the new content of those scopes
    only: rows outside them are kept, rows inside them that are not in ``rows`` are deleted. ``older_than``
    then deletes the rows whose window field is older (a windowed table's window moved on).
    """
    columns = [*table.column_names, ROW_HASH]
    staging = sql.Identifier(f"_incoming_{table.name}")
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
            staging, _ident(table)
        )
    )
    count = 0
    column_list = sql.SQL(", ").join(map(sql.Identifier, columns))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, column_list)) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(name))
        for name in [*columns, PUBLISHED_AT]
        if name not in table.key
    )
    written = conn.execute(
        sql.SQL(
            "INSERT INTO {target} AS t ({columns}, {published_at}) SELECT {columns}, now() FROM {staging} "
            "ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE t.{row_hash} IS DISTINCT FROM excluded.{row_hash} "
            "RETURNING (xmax = 0) AS inserted"
        ).format(
            target=_ident(table),
            columns=column_list,
            published_at=sql.Identifier(PUBLISHED_AT),
            staging=staging,
            key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
            updates=updates,
            row_hash=sql.Identifier(ROW_HASH),
        )
    ).fetchall()
    inserted = sum(1 for (is_insert,) in written if is_insert)
    key_match = sql.SQL(" AND ").join(sql.SQL("i.{0} = t.{0}").format(sql.Identifier(k)) for k in table.key)
    scope = sql.SQL("TRUE")
    if within is not None:
        scope = sql.SQL("({})").format(
            sql.SQL(" OR ").join(_scope_condition("t", s) for s in within) if within else sql.SQL("FALSE")
        )
    deleted = conn.execute(
        sql.SQL(
            "DELETE FROM {target} AS t WHERE {scope} AND NOT EXISTS (SELECT 1 FROM {staging} AS i WHERE {match})"
        ).format(target=_ident(table), staging=staging, match=key_match, scope=scope)
    ).rowcount
    if older_than is not None and table.window_field:
        deleted += conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} <= {}").format(
                _ident(table), sql.Identifier(table.window_field), sql.Literal(older_than)
            )
        ).rowcount
    return count, inserted, len(written) - inserted, deleted
