"""The ``elt`` command line: global options, error handling and the list of commands.

Each command lives in ``elt/commands/<name>.py`` and stays thin: read options, build the task, run it, turn
the result into an exit code (0 ok, 1 a step failed, 2 usage/invalid project/unexpected error, 3 busy).
The command modules import only click and the standard library at the top; what a command needs (pydantic,
pymongo, rich, pandas, sklearn) is imported inside its body, so ``import elt.cli`` and ``elt --help`` stay fast.
"""

from __future__ import annotations

import contextlib
import logging
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


@dataclass
class CliContext:
    """What every command receives as ``ctx.obj``: global options and lazy project/store access."""

    #: ``--project-dir``; None = ``ELT_PROJECT_DIR`` or the current directory.
    project_dir: Path | None
    target_name: str | None
    log_format: str = "text"
    verbosity: int = 0
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The validated project (loaded once)."""
        if self._project is None:
            from elt.config import load_project
            from elt.settings import settings

            project_dir = self.project_dir or settings().project_dir or Path(".")
            self._project = load_project(project_dir, self.target_name)
        return self._project

    @contextlib.contextmanager
    def store(self) -> Iterator:
        """An open ``elt.store.Store`` for the project's target."""
        from elt.store import open_store

        with open_store(self.project()) as store:
            yield store


class EltGroup(click.Group):
    """A click group that turns expected errors into a message and an exit code, never a traceback."""

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
            if (ctx.obj and ctx.obj.verbosity > 0) or _traceback_wanted():
                log.exception("unexpected error")
            click.echo(
                f"Unexpected error: {type(exc).__name__}: {redact(str(exc))} (rerun with -v for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_USAGE)


def _traceback_wanted() -> bool:
    """``ELT_TRACEBACK`` is set (and the environment is readable)."""
    from elt.settings import settings

    try:
        return bool(settings().traceback)
    except EltError:
        return False


@click.group(
    cls=EltGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog="Example: elt run --demo   (the whole job offline, on the embedded store)",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    show_default="current directory or $ELT_PROJECT_DIR",
    help="Project directory (the one holding config/elt.yml and aggregations/).",
)
@click.option("--target", help="Target of config/profiles.yml (default: $ELT_TARGET or its default_target).")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", help="Log format on stderr."
)
@click.option("-v", "--verbose", count=True, help="More logging (debug).")
@click.option("-q", "--quiet", count=True, help="Less logging (warnings only).")
@click.version_option(__version__, prog_name="elt")
@click.pass_context
def main(
    ctx: click.Context,
    project_dir: Path | None,
    target: str | None,
    log_format: str,
    verbose: int,
    quiet: int,
) -> None:
    """airqino-elt: AirQino sensors -> MongoDB -> daily marts, tests, forecasts -> PostgreSQL/Superset.

    Every command is safe to rerun. Without MONGO_URI, data goes to an embedded server under .elt/.
    """
    setup_logging(log_format, verbose - quiet)
    ctx.obj = CliContext(
        project_dir=project_dir, target_name=target, log_format=log_format, verbosity=verbose - quiet
    )


# The commands import ``CliContext`` from here for type hints only, so they are imported after ``main``.
from elt.commands.dashboard import dashboard  # noqa: E402
from elt.commands.debug import debug  # noqa: E402
from elt.commands.forecast import forecast  # noqa: E402
from elt.commands.load import load  # noqa: E402
from elt.commands.publish import publish  # noqa: E402
from elt.commands.run import run  # noqa: E402
from elt.commands.schema import schema  # noqa: E402
from elt.commands.server import server  # noqa: E402
from elt.commands.show import show  # noqa: E402
from elt.commands.simulate import simulate  # noqa: E402
from elt.commands.status import status  # noqa: E402
from elt.commands.test import test  # noqa: E402
from elt.commands.transform import transform  # noqa: E402

for _command in (dashboard, debug, forecast, load, publish, run, schema, server, show, simulate, status, test,
                 transform):  # fmt: skip
    main.add_command(_command)

if __name__ == "__main__":
    sys.exit(main())
