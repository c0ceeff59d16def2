"""``elt simulate``: a local AirQino API (generated or recorded stations) until Ctrl-C."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from pathlib import Path

import click

from elt.commands.params import archive_options, parse_station_map


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO time, e.g. 2024-09-09T10:30Z", param_hint="--now"
        ) from None


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0 = any free port."
)
@click.option(
    "--stations",
    "station_count",
    default=2,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="Generated stations: the two brief stations first, then synthetic ones.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the generated data.")
@archive_options(
    "Replay recorded responses instead: <station_id>.json per station.",
    "With --from-dir: serve STEM.json (a data-only array) as station ID (repeatable).",
)
@click.option(
    "--now",
    "now_text",
    metavar="ISO",
    help="Instant the clock starts from (UTC if no zone). Default: now; with --from-dir: the newest "
    "recorded hour.",
)
@click.option("--frozen", is_flag=True, help="Keep the clock at --now instead of letting it run.")
@click.option(
    "--window-days",
    default=365,
    show_default=True,
    type=click.IntRange(1, 3660),
    help="Length of the rolling window each response covers.",
)
@click.option(
    "--auth",
    "auth_mode",
    type=click.Choice(["none", "bearer"]),
    default="none",
    show_default=True,
    help="bearer: require a token (static or from the fake Keycloak password grant).",
)
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds (scripts, CI).")
def simulate(
    host: str,
    port: int,
    station_count: int,
    seed: int,
    from_dir: Path | None,
    file_map: tuple[str, ...],
    now_text: str | None,
    frozen: bool,
    window_days: int,
    auth_mode: str,
    duration: float | None,
) -> None:
    """Serve a local AirQino API (GET /v3/getStationHourlyAvg/{station_id}) until Ctrl-C.

    The newest row of each response is the still-filling hour; older rows are final. Point the project at it
    with source.base_url in config/elt.yml.

    Example: elt simulate --port 8765 --stations 10 --seed 7

    Example: elt simulate --from-dir recorded/ --map station1_data=283164601 --now 2023-06-01T00:30Z --frozen
    """
    from elt.simulator import AirQinoSimulator, AuthSettings, SimClock

    now = _parse_now(now_text)
    auth = AuthSettings() if auth_mode == "bearer" else None
    common = {"window_days": window_days, "auth": auth, "host": host, "port": port}
    if from_dir is not None:
        sim = AirQinoSimulator.from_dir(from_dir, parse_station_map(file_map), now=now, seed=seed, **common)
        sim.clock.set_running(not frozen)
    else:
        clock = SimClock(now, running=not frozen)
        sim = AirQinoSimulator.generated(station_count, seed, clock=clock, **common)
    with sim:
        click.echo(
            f"AirQino simulator at {sim.base_url} (clock {sim.clock().isoformat(timespec='minutes')}"
            f"{', frozen' if frozen else ''})"
        )
        for station_id, station in list(sim.stations.items())[:10]:
            click.echo(f"  {station_id}  {station.header()['station_name']}")
        if len(sim.stations) > 10:
            click.echo(f"  ... and {len(sim.stations) - 10} more stations")
        if auth is not None:
            click.echo(
                f"auth: Bearer {auth.static_tokens[0]}  or password grant at {sim.token_url} "
                "(client_id {}, user {}, password {})".format(auth.client_id, *next(iter(auth.users.items())))
            )
        first = next(iter(sim.stations))
        click.echo(f"try: curl {sim.station_url(first)}")
        click.echo("Press Ctrl-C to stop." if duration is None else f"Stopping after {duration:g} s.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait(duration)
    click.echo("simulator stopped")
