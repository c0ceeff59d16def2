"""``elt transform``: run the YAML aggregation models of ``aggregations/`` (like ``dbt run``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from elt.commands.params import json_option, parse_vars, vars_option

if TYPE_CHECKING:
    from elt.commands.context import CliContext


_STYLES = {
    "success": "green",
    "pass": "green",
    "warn": "yellow",
    "skipped": "yellow",
    "error": "red",
    "fail": "red",
}


def print_result(result: Any, as_json: bool) -> None:
    """The run results as JSON on stdout, or a one-screen table."""
    if as_json:
        click.echo(json.dumps(result.run_results, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"elt {result.command}: {len(result.results)} nodes in {result.elapsed_time:.1f} s")
    for column in ("node", "status", "detail", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for r in result.results:
        detail = r.message
        if result.command == "transform" and r.adapter_response:
            response = r.adapter_response
            detail = f"{response['mode']}: {response['rows_affected']} written; {r.message}"
        style = _STYLES.get(r.status, "")
        table.add_row(r.unique_id, f"[{style}]{r.status}[/{style}]", detail, f"{r.execution_time:.2f}")
    console.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts().items())
    console.print(f"{'OK' if result.ok else 'FAILED'}: {counts}. Artifacts in target/.")


@click.command("transform")
@click.option("-s", "--select", multiple=True, metavar="SELECTOR",
              help="dbt syntax: name, +name, name+, tag:x, source:airqino+, path:aggregations/marts; "
                   "space = union, comma = intersection (repeatable).")  # fmt: skip
@click.option("--exclude", multiple=True, metavar="SELECTOR", help="Same syntax; removed from the selection.")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@vars_option
@click.option("--shard", metavar="I/N", help="Only the per-station models (tag:staging) for the stations of "
              "shard I of N; then run the rest once with --exclude tag:staging.")  # fmt: skip
@json_option("Print run_results.json on stdout.")
@click.pass_obj
def transform(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...], full_refresh: bool,
              vars_text: str | None, shard: str | None, as_json: bool) -> None:  # fmt: skip
    """Validate aggregations/ and materialize the selected models in dependency order.

    Incremental models recompute only the partitions whose input changed since their last successful run.
    Writes target/manifest.json and target/run_results.json. Exit 0 ok, 1 a model failed, 2 invalid project.

    Examples: elt transform; elt transform -s +daily_sensor_averages; elt transform --full-refresh
    """
    from elt.models import load_models
    from elt.transform.task import run_transform

    project = obj.project()
    cli_vars = parse_vars(vars_text)
    load_models(project, cli_vars)  # the whole project validates before the store is even opened
    if shard is not None:
        _transform_shard(obj, shard, select, exclude, full_refresh, cli_vars, as_json)
        return
    with obj.store() as store:
        result = run_transform(project, store, select, exclude, full_refresh, cli_vars)
    print_result(result, as_json)
    click.get_current_context().exit(result.exit_code)


def _transform_shard(obj: CliContext, shard: str, select: tuple[str, ...], exclude: tuple[str, ...],
                     full_refresh: bool, cli_vars: dict[str, Any], as_json: bool) -> None:  # fmt: skip
    """``elt transform --shard I/N``: the per-station models for one shard's stations."""
    from rich.console import Console

    from elt.models.shards import PER_STATION_SELECTOR, parse_shard
    from elt.transform.sharded import transform_shard

    if select or exclude or full_refresh:
        raise click.UsageError(f"--shard builds the per-station models ({PER_STATION_SELECTOR}) incrementally; "
                               "it does not combine with --select, --exclude or --full-refresh")  # fmt: skip
    with obj.store() as store:
        result = transform_shard(obj.project(), store.db, parse_shard(shard), vars=cli_vars)
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        models = ", ".join(
            f"{m['model']}: {m['partitions']} partitions, {m['rows']} rows" for m in result["models"]
        )
        Console().print(f"shard {result['shard']} ({len(result['stations'])} stations): {models or 'nothing'} "
                        f"in {result['seconds']:.1f} s")  # fmt: skip
