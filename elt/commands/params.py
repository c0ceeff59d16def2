"""Click parameters shared by the commands: a UTC time, ``--json``, ``--vars`` and ``--from-dir``/``--map``.

Kept light (click and the standard library only), since ``elt.cli`` imports every command at start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from elt.utc import as_utc

F = TypeVar("F", bound=Callable[..., Any])

VARS_EXAMPLE = "'{min_hours_per_day: 20}'"


class UtcTime(click.ParamType):
    """``2024-09-09``, ``2024-09-09 10:00``, ISO 8601 or Airflow's ``2024-09-09 10:00:00+00:00``; no zone = UTC.

    Always an aware UTC datetime (a value with another zone is converted).
    """

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """The value as aware UTC, or a usage error with an example."""
        if isinstance(value, datetime):
            return as_utc(value)
        try:
            return as_utc(datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")))
        except ValueError:
            self.fail(
                f"{value!r} is not a time: use e.g. 2024-09-09, '2024-09-09 10:00' or '2024-09-09T10:00Z' (UTC)",
                param,
                ctx,
            )


def json_option(text: str) -> Callable[[F], F]:
    """``--json`` (the parameter ``as_json``) with the help ``text``: print the result as JSON on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=text)


def vars_option(func: F) -> F:
    """``--vars YAML`` (the parameter ``vars_text``): override project vars; read it with ``parse_vars``."""
    option = click.option("--vars", "vars_text", metavar="YAML", help=f"Override vars, e.g. {VARS_EXAMPLE}.")
    return option(func)


def parse_vars(text: str | None) -> dict[str, Any]:
    """``--vars`` as a mapping (YAML or JSON), or a usage error."""
    if not text:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"not valid YAML/JSON: {exc}", param_hint="--vars") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"expected a mapping, e.g. {VARS_EXAMPLE}", param_hint="--vars")
    return value


def parse_station_map(values: tuple[str, ...], option: str = "--map") -> dict[str, str]:
    """``--map STEM=ID`` (repeatable) as ``{file stem: station id}``, or a usage error."""
    mapping = {}
    for item in values:
        stem, sep, station_id = item.partition("=")
        if not sep or not stem or not station_id:
            raise click.BadParameter(
                f"{item!r}: expected FILE_STEM=STATION_ID, e.g. station1_data=283164601", param_hint=option
            )
        mapping[stem.removesuffix(".json")] = station_id
    return mapping


def archive_options(from_dir_help: str, map_help: str) -> Callable[[F], F]:
    """``--from-dir DIR`` (``<station_id>.json`` per station) and ``--map STEM=ID`` (the parameter ``file_map``;
    read it with ``parse_station_map``)."""

    def decorate(func: F) -> F:
        func = click.option("--map", "file_map", multiple=True, metavar="STEM=ID", help=map_help)(func)
        directory = click.Path(exists=True, file_okay=False, path_type=Path)
        return click.option("--from-dir", type=directory, help=from_dir_help)(func)

    return decorate
