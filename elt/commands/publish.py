"""``elt publish``: copy the marts from MongoDB into PostgreSQL (SERVING_DSN) for Superset."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from elt.commands.params import json_option
from elt.errors import PublishError

if TYPE_CHECKING:
    from elt.commands.context import CliContext


@click.command()
@click.option("--rebuild", is_flag=True, help="Drop and recreate every serving table instead of upserting.")
@json_option("Print the summary as JSON on stdout.")
@click.option("--demo", is_flag=True, help="Publish the demo database (<database>_demo) of `elt run --demo`.")
@click.pass_obj
def publish(obj: CliContext, rebuild: bool, as_json: bool, demo: bool) -> None:
    """Copy the marts to PostgreSQL at SERVING_DSN; only changed rows are written.

    Tables (schema "airqino"): every model with a publish: block in aggregations/ (daily_sensor_averages,
    station_freshness, forecast_verification and the dashboard's marts), the last 30 days of forecasts, and
    stations from config/elt.yml.

    Examples: SERVING_DSN=postgresql://elt:secret@localhost:5432/airqino elt publish;
    elt run --demo && elt publish --demo   (the demo's marts)
    """
    try:
        from elt.publish import publish_marts
    except ImportError as exc:
        raise PublishError(f"elt publish needs psycopg: pip install 'airqino-elt[publish]' ({exc})") from None

    from elt.run.demo import demo_database_project, demo_hint
    from elt.store import open_store

    project = demo_database_project(obj.project()) if demo else obj.project()
    with open_store(project) as store:
        try:
            result = publish_marts(project, store.db, rebuild=rebuild)
        except PublishError as exc:
            if demo or "has no" not in str(exc):
                raise
            hint = demo_hint(project, "publish")
            raise PublishError(f"{exc}{hint}") from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"published to {result.target} (schema airqino)", title_justify="left")
    for column in ("table", "rows", "inserted", "updated", "deleted"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for write in result.tables:
        name = f"{write.table} (created)" if write.created else write.table
        table.add_row(name, str(write.rows), str(write.inserted), str(write.updated), str(write.deleted))
    for name in result.skipped:
        table.add_row(f"{name} (no collection yet)", "-", "-", "-", "-")
    console = Console(stderr=True)
    console.print(table)
    console.print(f"{result.rows_written} rows written in {result.seconds:.1f} s")
