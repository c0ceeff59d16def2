"""``elt show``: look at the data without a MongoDB shell: the collections, or the newest documents of one."""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Any

import click

from elt.errors import ConfigError
from elt.utc import jsonable

if TYPE_CHECKING:
    from elt.commands.context import CliContext

#: Fields the newest documents are sorted by (the first one a collection's documents have).
TIME_FIELDS = ("ts", "day", "issued_at", "last_ts", "started_at", "loaded_at", "_updated_at")


def _station_id(project: Any, station: str) -> str:
    for cfg in project.config.stations:
        if station in (cfg.id, cfg.name):
            return cfg.id
    known = ", ".join(f"{s.id} ({s.name})" for s in project.config.stations)
    raise ConfigError(f"unknown station '{station}': config/elt.yml defines {known}")


@click.command("show")
@click.argument("collection", required=False)
@click.option("-n", "--limit", default=10, show_default=True, type=click.IntRange(min=1),
              help="Documents to print (the newest first).")  # fmt: skip
@click.option("--station", metavar="ID|NAME", help="Only this station (its id or name in config/elt.yml).")
@click.option("--fields", metavar="A,B,...", help="Only these fields, e.g. station_name,day,pm25_mean.")
@click.option("--demo", is_flag=True, help="The demo database (<database>_demo) of `elt run --demo`.")
@click.pass_obj
def show(obj: CliContext, collection: str | None, limit: int, station: str | None, fields: str | None,
         demo: bool) -> None:  # fmt: skip
    """Without COLLECTION: list the collections and their document counts. With it: print its newest documents
    as JSON Lines (one document per line; pipe to jq or a file), newest first.

    Examples: elt show; elt show daily_sensor_averages --station SMART188 -n 3;
    elt show forecasts --fields station_id,pollutant,horizon_h,value --demo
    """
    from elt.run.demo import demo_project
    from elt.store import open_store

    project = obj.project()
    if demo:
        project = demo_project(project, project.config.source.base_url)
    with open_store(project) as store:
        db = store.db
        names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
        if collection is None:
            click.echo(f"database {db.name} ({store.uri_redacted}):")
            for name in names:
                click.echo(f"  {name:<32} {db[name].estimated_document_count():>10,} documents")
            if not names:
                click.echo("  (empty: run elt run, or elt run --demo and elt show --demo)")
            return
        if collection not in names:
            close = difflib.get_close_matches(collection, names, n=1)
            hint = (
                f"; did you mean '{close[0]}'?"
                if close
                else f" (it has: {', '.join(names) or 'nothing yet'})"
            )
            raise ConfigError(f"database {db.name} has no collection '{collection}'{hint}")
        query: dict[str, Any] = {"station_id": _station_id(project, station)} if station else {}
        projection = {f.strip(): 1 for f in fields.split(",") if f.strip()} if fields else None
        sample = db[collection].find_one(query) or {}
        sort_field = next((f for f in TIME_FIELDS if f in sample), "_id")
        cursor = db[collection].find(query, projection).sort([(sort_field, -1), ("_id", -1)]).limit(limit)
        for doc in cursor:
            click.echo(json.dumps(jsonable(doc, str), ensure_ascii=False))
