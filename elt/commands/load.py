"""``elt load``: AirQino API (or archived responses) -> ``raw_airqino_hourly``, idempotent and audited."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from elt.commands.params import UtcTime, archive_options, json_option, parse_station_map
from elt.errors import EXIT_FAILED

if TYPE_CHECKING:
    from elt.commands.context import CliContext


@click.command("load")
@click.option("--station", "stations", multiple=True, metavar="ID", help="Station id to load (repeatable).")
@click.option("--since", type=UtcTime(), help="Only land hours at or after this time (UTC).")
@click.option("--until", type=UtcTime(), help="Only land hours before this time (UTC).")
@archive_options(
    "Import archived responses instead of calling the API: <station_id>.json per station.",
    "With --from-dir: read station ID from STEM.json (repeatable), e.g. station1_data=283164601.",
)
@click.option(
    "--fetched-at",
    type=UtcTime(),
    help="With --from-dir: when the archives were fetched (default: 30 min into each file's newest hour).",
)
@click.option("--shard", metavar="I/N", help="Only the stations of shard I of N (0-based; the k-th enabled id, sorted, is in shard k mod N): "
              "one of N loads running in parallel.")  # fmt: skip
@json_option("Print the result as one JSON object on stdout.")
@click.pass_obj
def load(
    obj: CliContext,
    stations: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    from_dir: Path | None,
    file_map: tuple[str, ...],
    fetched_at: datetime | None,
    shard: str | None,
    as_json: bool,
) -> None:
    """Land AirQino hourly data in raw_airqino_hourly: only new or changed rows are written.

    Rows that cannot be used go to raw_airqino_rejects with a reason; every station's run is audited in
    load_batches. A failing station does not stop the others; the exit code is 1 if any failed.

    Examples: elt load; elt load --station 283164601 --json; elt load --from-dir archive/2024-09-09
    """
    from elt.load.report import RichLoadProgress, summary_table
    from elt.load.task import LoadTask
    from elt.sources.airqino import AirqinoClient, ClientSettings
    from elt.sources.archive import ArchiveSource
    from elt.sources.base import StationSource

    if (file_map or fetched_at) and from_dir is None:
        raise click.UsageError("--map and --fetched-at only apply with --from-dir")
    if since and until and since >= until:
        raise click.UsageError(
            f"--since ({since:%Y-%m-%d %H:%M}) must be before --until ({until:%Y-%m-%d %H:%M})"
        )
    project = obj.project()
    station_ids = [project.station(s).id for s in stations] or [s.id for s in project.enabled_stations()]
    if shard is not None:
        from elt.models.shards import parse_shard

        station_ids = parse_shard(shard).stations(station_ids)
        if not station_ids:
            click.echo(f"shard {shard}: no station of this shard to load", err=True)
            return
    if not station_ids:
        raise click.UsageError(
            "no station to load: every station in config/elt.yml is disabled; pass --station"
        )
    source = project.config.source
    station_source: StationSource = (
        ArchiveSource(from_dir, parse_station_map(file_map), fetched_at)
        if from_dir
        else AirqinoClient(ClientSettings.from_config(source))
    )
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:  # logs and CI: no 80-column squeeze of the summary table
        console.width = 150
    with obj.store() as store, RichLoadProgress(console, station_ids) as progress:
        task = LoadTask(
            store.db, station_ids, station_source, since=since, until=until,
            concurrency=source.concurrency, progress=progress, restrict_to_window=True,
        )  # fmt: skip
        result = task.run()
    console.print(summary_table(result))
    if as_json:
        click.echo(json.dumps(result.as_json()))
    if not result.ok:
        raise click.exceptions.Exit(EXIT_FAILED)
