"""The ``elt`` command line: global options, error handling and the list of commands.

Each command lives in ``elt/commands/<name>.py`` and stays thin: read options, build the task, run it, turn
the result into an exit code (0 ok, 1 a step failed, 2 usage/invalid project/unexpected error, 3 busy).
A command's module is imported only when that command runs (or ``--help`` lists them): ``import elt.cli``
stays light (no pydantic, pymongo or rich), so every hourly process starts faster.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from elt import __version__
from elt.errors import EXIT_USAGE, EltError
from elt.logs import redact, setup_logging

if TYPE_CHECKING:
    from elt.config import Project

log = logging.getLogger(__name__)

#: ``module:attribute`` of every command, in the order ``elt --help`` lists them.
COMMANDS = [
    "elt.commands.dashboard:dashboard",
    "elt.commands.debug:debug",
    "elt.commands.forecast:forecast",
    "elt.commands.load:load",
    "elt.commands.publish:publish",
    "elt.commands.run:run",
    "elt.commands.schema:schema",
    "elt.commands.server:server",
    "elt.commands.show:show",
    "elt.commands.simulate:simulate",
    "elt.commands.status:status",
    "elt.commands.test:test",
    "elt.commands.transform:transform",
]


@dataclass
class CliContext:
    """What every command receives as ``ctx.obj``: global options and lazy project/store access."""

    project_dir: Path
    target_name: str | None
    log_format: str = "text"
    verbosity: int = 0
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The validated project (loaded once)."""
        if self._project is None:
            from elt.config import load_project

            self._project = load_project(self.project_dir, self.target_name)
        return self._project

    @contextlib.contextmanager
    def store(self) -> Iterator:
        """An open ``elt.store.Store`` for the project's target."""
        from elt.store import open_store

        with open_store(self.project()) as store:
            yield store


class EltGroup(click.Group):
    """A click group that turns expected errors into a message and an exit code, never a traceback.

    Commands are listed by name from ``COMMANDS`` and imported on first use.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102 - click API
        return sorted({*self.commands, *(spec.split(":")[1] for spec in COMMANDS)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: D102 - click API
        if cmd_name not in self.commands:
            spec = next((s for s in COMMANDS if s.split(":")[1] == cmd_name), None)
            if spec is None:
                return None
            module_name, attribute = spec.split(":")
            self.add_command(getattr(importlib.import_module(module_name), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except EltError as exc:
            click.echo(f"Error: {redact(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 2, traceback only with -v
            if os.environ.get("ELT_TRACEBACK") or (ctx.obj and ctx.obj.verbosity > 0):
                log.exception("unexpected error")
            click.echo(
                f"Unexpected error: {type(exc).__name__}: {redact(str(exc))} (rerun with -v for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_USAGE)


@click.group(
    cls=EltGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog="Example: elt run --demo   (the whole job offline, on the embedded store)",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("ELT_PROJECT_DIR", "."),
    show_default="current directory or $ELT_PROJECT_DIR",
    help="Project directory (the one holding config/elt.yml and aggregations/).",
)
@click.option(
    "--target", envvar="ELT_TARGET", help="Target of config/profiles.yml (default: its default_target)."
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", help="Log format on stderr."
)
@click.option("-v", "--verbose", count=True, help="More logging (debug).")
@click.option("-q", "--quiet", count=True, help="Less logging (warnings only).")
@click.version_option(__version__, prog_name="elt")
@click.pass_context
def main(
    ctx: click.Context, project_dir: Path, target: str | None, log_format: str, verbose: int, quiet: int
) -> None:
    """airqino-elt: AirQino sensors -> MongoDB -> daily marts, tests, forecasts -> PostgreSQL/Superset.

    Every command is safe to rerun. Without MONGO_URI, data goes to an embedded server under .elt/.
    """
    setup_logging(log_format, verbose - quiet)
    ctx.obj = CliContext(
        project_dir=project_dir, target_name=target, log_format=log_format, verbosity=verbose - quiet
    )


if __name__ == "__main__":
    sys.exit(main())
