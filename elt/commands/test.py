"""``elt test``: run the data tests declared in ``aggregations/`` (like ``dbt test``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from elt.commands.params import json_option, parse_vars, vars_option
from elt.commands.transform import print_result

if TYPE_CHECKING:
    from elt.commands.context import CliContext


@click.command("test")
@click.option("-s", "--select", multiple=True, metavar="SELECTOR",
              help="Tests of the selected nodes (dbt syntax, see elt transform --help), or tests by name.")  # fmt: skip
@click.option("--exclude", multiple=True, metavar="SELECTOR", help="Same syntax; removed from the selection.")
@click.option(
    "--store-failures", is_flag=True, help="Keep failing documents in the elt_test_failures collection."
)
@vars_option
@json_option("Print run_results.json on stdout.")
@click.option("--demo", is_flag=True, help="Test the demo database (<database>_demo) of `elt run --demo`.")
@click.pass_obj
def test(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...], store_failures: bool,
         vars_text: str | None, as_json: bool, demo: bool) -> None:  # fmt: skip
    """Run data tests (unique, not_null, accepted_values, accepted_range, relationships, completeness) and
    source freshness. Exit 0 all passed (warnings allowed), 1 an error-severity test failed, 2 invalid project.

    Examples: elt test; elt test -s daily_sensor_averages --store-failures; elt test -s source:airqino;
    elt test --demo
    """
    from elt.models import load_models
    from elt.run.demo import demo_database_project
    from elt.store import open_store
    from elt.transform.task import run_tests

    project = demo_database_project(obj.project()) if demo else obj.project()
    cli_vars = parse_vars(vars_text)
    load_models(project, cli_vars)
    with open_store(project) as store:
        result = run_tests(project, store, select, exclude, store_failures, cli_vars)
    print_result(result, as_json)
    click.get_current_context().exit(result.exit_code)
