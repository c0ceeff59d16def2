"""``elt debug``: check the configuration, the database and the AirQino source, like ``dbt debug``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from elt.commands.params import json_option
from elt.errors import EXIT_FAILED, EltError

if TYPE_CHECKING:
    from elt.commands.context import CliContext


def _check_source(project: Any, timeout_s: float) -> tuple[bool, str]:
    """Reachability of the AirQino API and, when auth is configured, that credentials are present/accepted."""
    import requests

    source = project.config.source
    auth = source.auth
    if auth.mode == "bearer" and auth.token is None:
        return False, "auth mode 'bearer' but AIRQINO_TOKEN is not set"
    if auth.mode == "password":
        if not (auth.username and auth.password):
            return False, "auth mode 'password' but AIRQINO_USERNAME / AIRQINO_PASSWORD are not set"
        try:
            response = requests.post(
                auth.token_url,
                data={"grant_type": "password", "client_id": auth.client_id, "username": auth.username,
                      "password": auth.password.get_secret_value()},
                timeout=timeout_s,
            )  # fmt: skip
        except requests.RequestException as exc:
            return False, f"token endpoint {auth.token_url} unreachable: {type(exc).__name__}"
        if response.status_code != 200:
            return (
                False,
                f"token endpoint {auth.token_url} refused the credentials (HTTP {response.status_code})",
            )
    try:
        response = requests.get(source.base_url, timeout=timeout_s)
    except requests.RequestException as exc:
        return False, f"{source.base_url} unreachable: {type(exc).__name__}"
    return True, f"{source.base_url} answered HTTP {response.status_code} (auth: {auth.mode})"


@click.command()
@click.option("--skip-source", is_flag=True, help="Do not contact the AirQino API (offline machines).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the source.")
@json_option("Print the checks as JSON on stdout.")
@click.pass_obj
def debug(obj: CliContext, skip_source: bool, timeout: float, as_json: bool) -> None:
    """Check config, database and source; print one table; exit 1 on a failure (2: invalid config).

    Example: MONGO_URI=mongodb://localhost:27017 elt debug --target prod
    """
    from rich.console import Console
    from rich.table import Table

    checks: list[dict[str, Any]] = []
    exit_code = EXIT_FAILED
    try:
        project = obj.project()
        stations = ", ".join(f"{s.id} ({s.name}, {s.timezone})" for s in project.enabled_stations())
        checks.append({"check": "config", "ok": True,
                       "detail": f"{project.project_dir}/config/elt.yml, target '{project.target_name}', "
                                 f"stations: {stations}"})  # fmt: skip
    except EltError as exc:
        checks.append({"check": "config", "ok": False, "detail": str(exc)})
        exit_code = exc.exit_code
        project = None
    if project is not None:
        try:
            with obj.store() as store:
                info = store.server_info()
            kind = "embedded " if info["embedded"] else ""
            checks.append({"check": "database", "ok": True, "server": info["name"], "version": info["version"],
                           "detail": f"{kind}{info['name']} {info['version']} at {info['uri']}, "
                                     f"database '{info['database']}'"})  # fmt: skip
        except EltError as exc:
            checks.append({"check": "database", "ok": False, "detail": str(exc)})
        if skip_source:
            checks.append({"check": "source", "ok": True, "detail": "skipped (--skip-source)"})
        else:
            ok, detail = _check_source(project, timeout)
            checks.append({"check": "source", "ok": ok, "detail": detail})
    all_ok = all(c["ok"] for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": all_ok, "checks": checks}))
    else:
        table = Table(title="elt debug")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for check in checks:
            table.add_row(check["check"], "[green]OK[/]" if check["ok"] else "[red]FAIL[/]", check["detail"])
        Console(stderr=False).print(table)
    if not all_ok:
        raise SystemExit(exit_code)
