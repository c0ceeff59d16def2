"""``elt dashboard``: the Superset dashboard of ``config/superset/`` as a bundle, and its import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from elt.commands.params import json_option

if TYPE_CHECKING:
    from elt.commands.context import CliContext


@click.group()
@click.option("--demo", is_flag=True,
              help="For the demo's data: accepted for symmetry; the dashboard reads the PostgreSQL tables that "
                   "`elt publish --demo` wrote.")  # fmt: skip
def dashboard(demo: bool) -> None:
    """The Superset dashboard kept as code in config/superset/ (see docs/superset.md).

    The dashboard reads the serving PostgreSQL, never MongoDB: for the demo's data run `elt publish --demo`
    first (`elt dashboard --demo ...` works the same as without the flag).

    Example: SUPERSET_SERVING_URI=postgresql+psycopg2://superset_ro@pg/serving elt dashboard import
    """
    if demo:
        click.echo("dashboard: reads the serving PostgreSQL tables; `elt publish --demo` fills them with the "
                   "demo's marts", err=True)  # fmt: skip


@dashboard.command("build")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="ZIP to write (default: target/superset_bundle.zip).",
)  # fmt: skip
@click.option(
    "--database-uri", help="SQLAlchemy URI written into the bundle (no password; default database.yaml)."
)
@click.pass_obj
def build(obj: CliContext, output: Path | None, database_uri: str | None) -> None:
    """Write the Superset import bundle, e.g. to import it by hand or from another container.

    Example: elt dashboard build -o /tmp/airqino.zip && superset import-dashboards -p /tmp/airqino.zip -u admin
    """
    from elt.publish.superset_bundle import build_bundle
    from elt.publish.tables import serving_tables

    project = obj.project()
    target = output or project.target_dir / "superset_bundle.zip"
    path = build_bundle(
        project.project_dir / "config" / "superset",
        target,
        serving_tables(project),
        database_uri,
        [s.name for s in project.config.stations],
    )
    click.echo(str(path))


@dashboard.command("import")
@click.option(
    "--username", default="admin", show_default=True, help="Superset user that will own the imports."
)
@click.option(
    "--superset-python", help="Python of the Superset virtualenv (default: $SUPERSET_PYTHON, .superset-venv)."
)
@json_option("Print the dashboard and chart ids as JSON on stdout.")
@click.pass_obj
def import_(obj: CliContext, username: str, superset_python: str | None, as_json: bool) -> None:
    """Import the dashboard into Superset (datasets, charts and dashboard overwritten) and set the database URI.

    Superset reads the serving database with SUPERSET_SERVING_URI (a read-only role, password included; it is
    never written into the bundle). Needs SUPERSET_SECRET_KEY and the Superset metadata database configured
    the same way as the Superset server (SUPERSET_CONFIG_PATH, default config/superset/superset_config.py).

    Example: SUPERSET_SERVING_URI=postgresql+psycopg2://superset_ro:pw@db/airqino elt dashboard import
    """
    from elt.publish.dashboard import import_dashboard

    result = import_dashboard(obj.project(), username=username, superset_python=superset_python)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"imported dashboard '{result.slug}' (id {result.dashboard_id}) with {len(result.charts)} charts; "
        f"open /superset/dashboard/{result.slug}/",
        err=True,
    )
