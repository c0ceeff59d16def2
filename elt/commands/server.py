"""``elt server``: the embedded MongoDB server used when no MONGO_URI is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from elt.commands.context import CliContext


@click.group()
def server() -> None:
    """Manage the embedded MongoDB server (SecantusDB under .elt/mongo).

    It starts by itself on the first command that needs it and is shared by later commands.

    Example: elt server status; elt server stop
    """


@server.command("status")
@click.pass_obj
def server_status(obj: CliContext) -> None:
    """Say whether the embedded server is running, and where.

    Example: elt server status
    """
    from elt.store import read_embedded_state

    project = obj.project()
    state = read_embedded_state(project.embedded_dir)
    if state:
        click.echo(f"running: pid {state['pid']}, {state['uri']}, data in {project.embedded_dir}")
    else:
        click.echo(f"not running (data dir {project.embedded_dir})")


@server.command("start")
@click.pass_obj
def server_start(obj: CliContext) -> None:
    """Start the embedded server now (otherwise the first command starts it).

    Example: elt server start
    """
    from elt.store import ensure_embedded_server

    data_dir = obj.project().embedded_dir
    click.echo(f"running at {ensure_embedded_server(data_dir)} (data in {data_dir})")


@server.command("stop")
@click.pass_obj
def server_stop(obj: CliContext) -> None:
    """Stop the embedded server; data stays on disk for the next start.

    Example: elt server stop
    """
    from elt.store import stop_embedded_server

    click.echo("stopped" if stop_embedded_server(obj.project().embedded_dir) else "was not running")
