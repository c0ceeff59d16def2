"""The ``elt`` command line: global options, error handling and the list of commands.

Each command lives in ``elt/commands/<name>.py`` and stays thin: read options, build the task, run it, turn
the result into an exit code (0 ok, 1 a step failed, 2 usage/invalid project/unexpected error, 3 busy).
The command modules import only click and the standard library at the top; what a command needs (pydantic,
pymongo, rich, pandas, sklearn) is imported inside its body, so ``import elt.cli`` and ``elt --help`` stay fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import click

from elt import __version__
from elt.commands.context import CliContext
from elt.commands.dashboard import dashboard
from elt.commands.debug import debug
from elt.commands.forecast import forecast
from elt.commands.load import load
from elt.commands.publish import publish
from elt.commands.run import run
from elt.commands.schema import schema
from elt.commands.server import server
from elt.commands.show import show
from elt.commands.simulate import simulate
from elt.commands.status import status
from elt.commands.test import test
from elt.commands.transform import transform
from elt.errors import EXIT_USAGE, EltError
from elt.logs import redact, setup_logging

log = logging.getLogger(__name__)


def run_and_exit() -> None:
    """The ``elt`` executable: run the command line, flush what it wrote, then end the process at once.

    Ending with ``os._exit`` skips the interpreter's teardown, which does no work of ours but costs up to 0.5 s
    per command: pymongo joins its monitor threads, which sleep in 0.5 s slices, and the last garbage
    collections walk every object of scikit-learn and pandas (0.2 s in an hourly ``elt run``). Every command
    has closed its files and connections by then; the operating system frees the rest.
    """
    try:
        main()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    if code is not None and not isinstance(code, int):
        click.echo(code, err=True)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)


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


for _command in (dashboard, debug, forecast, load, publish, run, schema, server, show, simulate, status, test,
                 transform):  # fmt: skip
    main.add_command(_command)

if __name__ == "__main__":
    sys.exit(main())
