"""``elt forecast``: train, predict and backtest the next two hours of CO and PM2.5 per station."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from elt.commands.params import UtcTime, json_option

if TYPE_CHECKING:
    from elt.commands.context import CliContext


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _names(obj: CliContext) -> dict[str, str]:
    try:
        return {s.id: s.name for s in obj.project().config.stations}
    except Exception:  # noqa: BLE001 - names are cosmetic
        return {}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


@click.group("forecast")
def forecast() -> None:
    """Forecast CO and PM2.5 one and two hours ahead per station; measure it against baselines.

    Needs the forecast extra: pip install "airqino-elt[forecast]".

    Examples: elt forecast train; elt forecast predict; elt forecast backtest --start 2024-07-15 --end 2024-09-09
    """
    from elt.forecast import require_forecast_extra

    require_forecast_extra()


@forecast.command("train")
@click.option("--until", type=UtcTime(), help="Train on data before this time (default: all final hours).")
@click.option("--validate-weeks", default=4, show_default=True, type=click.IntRange(1, 52),
              help="Weeks of recent data the deployed predictor per series is chosen on.")  # fmt: skip
@json_option("Print the stored model's metadata as JSON on stdout.")
@click.pass_obj
def train(obj: CliContext, until: datetime | None, validate_weeks: int, as_json: bool) -> None:
    """Fit the models, choose the predictor per station, pollutant and horizon, store them in forecast_models.

    The choice is the lowest MAE in a weekly-refit backtest of the last --validate-weeks weeks (persistence
    included, so never worse than persistence there).

    Example: elt forecast train --validate-weeks 4 --json
    """
    from rich.console import Console
    from rich.table import Table

    from elt.forecast.run import train_project
    from elt.forecast.store import to_document

    names = _names(obj)
    with obj.store() as store:
        bundle = train_project(obj.project(), store.db, until=until, validate_weeks=validate_weeks)
    table = Table(title=f"Forecast model {bundle.version}", title_justify="left")
    for col in ("station", "pollutant", "horizon", "deployed", "MAE", "MAE persistence", "skill"):
        table.add_column(col)
    for c in bundle.choices:
        m = c.metrics
        chosen = m.get(f"mae_{'model' if c.predictor == 'gbm' else c.predictor}") if c.predictor else None
        table.add_row(
            names.get(c.station_id, c.station_id),
            c.pollutant,
            f"+{c.horizon_h} h",
            c.predictor or f"none: {c.reason}",
            _fmt(chosen),
            _fmt(m.get("mae_persistence")),
            _fmt(m.get("skill"), 2),
        )
    Console(stderr=True).print(table)
    if as_json:
        doc = to_document(bundle)
        for binaries in ("models", "trees"):
            doc.pop(binaries)
        click.echo(json.dumps(doc, default=_json_default))


@forecast.command("predict")
@click.option("--at", type=UtcTime(), help="Issue from this hour instead of each station's last final hour.")
@json_option("Print the written forecasts as JSON on stdout.")
@click.pass_obj
def predict(obj: CliContext, at: datetime | None, as_json: bool) -> None:
    """Write the +1 h and +2 h forecasts from each station's last observed hour into forecasts.

    Idempotent: one document per station, pollutant, issue hour and horizon. A series whose last 3 hours are
    not all valid, or that had no valid data at training, gets no forecast; the reason is logged. A stored
    model that fails its safety checks is never run: persistence forecasts are written and the exit code is 1.

    Example: elt forecast predict --json
    """
    from rich.console import Console
    from rich.table import Table

    from elt.forecast.run import predict_project

    names = _names(obj)
    with obj.store() as store:
        result = predict_project(obj.project(), store.db, at=at)
    table = Table(title=f"Forecasts (model {result.model_version})", title_justify="left")
    for col in ("station", "pollutant", "issued (UTC)", "horizon", "value", "model"):
        table.add_column(col)
    for d in result.forecasts:
        table.add_row(
            names.get(d["station_id"], d["station_id"]),
            d["pollutant"],
            f"{d['issued_at']:%Y-%m-%d %H:00}",
            f"+{d['horizon_h']} h",
            _fmt(d["value"]),
            d["model"],
        )
    for s in result.skipped:
        table.add_row(
            names.get(s["station_id"], s["station_id"]),
            s.get("pollutant", "-"),
            "-",
            f"+{s['horizon_h']} h" if "horizon_h" in s else "-",
            "-",
            f"none: {s['reason']}",
        )
    Console(stderr=True).print(table)
    if as_json:
        payload = {**result.counts(), "forecasts": result.forecasts, "skipped": result.skipped}
        click.echo(json.dumps(payload, default=_json_default))
    if result.refusal:
        from elt.errors import ForecastError

        raise ForecastError(result.refusal)


@forecast.command("backtest")
@click.option("--start", type=UtcTime(), required=True, help="First forecast origin (UTC), e.g. 2024-07-15.")
@click.option(
    "--end", type=UtcTime(), required=True, help="Origins before this (UTC, exclusive), e.g. 2024-09-09."
)
@click.option("--station", "stations", multiple=True, metavar="ID", help="Only this station (repeatable).")
@json_option('Print {"results": [...]} on stdout.')
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of forecast against observed for the last days of the range.",
)
@click.option(
    "--plot-days", default=7, show_default=True, type=click.IntRange(1, 366), help="Days in the plot."
)
@click.option(
    "--recorded",
    "recorded_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read recorded API responses (<station_id>.json) instead of the database; QC by the staging model "
    "in a scratch database on the project's server.",
)
@click.pass_obj
def backtest(
    obj: CliContext,
    start: datetime,
    end: datetime,
    stations: tuple[str, ...],
    as_json: bool,
    plot_path: Path | None,
    plot_days: int,
    recorded_dir: Path | None,
) -> None:
    """Rolling-origin backtest: every hour in [--start, --end) is an origin; the model is refit weekly on
    data strictly before each refit point; persistence, seasonal naive and the blend are scored on the same
    origins. skill = 1 - mae_model / mae_persistence.

    Example: elt forecast backtest --start 2024-07-15 --end 2024-09-09 --json --plot backtest.png
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from elt.forecast import HORIZONS, POLLUTANTS
    from elt.forecast.backtest import backtest_window, run_backtest
    from elt.forecast.gbm import GbmParams
    from elt.forecast.series import hourly_grid

    if start >= end:
        raise click.UsageError(
            f"--start ({start:%Y-%m-%d %H:%M}) must be before --end ({end:%Y-%m-%d %H:%M})"
        )
    params = GbmParams()
    window = backtest_window(start, end, params)
    timezones: dict[str, str] = {}
    if recorded_dir is not None:
        from elt.forecast.recorded import read_recorded_dir

        # QC by the project's staging model, in a scratch database on the project's server
        with obj.store() as store:
            frame = read_recorded_dir(obj.project(), store.db.client, recorded_dir, list(stations) or None)
        grids = hourly_grid(frame)
        names = _names(obj)
    else:
        from elt.forecast.run import load_grids, project_stations

        station_ids, timezones = project_stations(obj.project())
        station_ids = list(stations) or station_ids
        with obj.store() as store:
            grids = load_grids(store.db, station_ids, start=window.read_start, end=window.read_end)
        names = _names(obj)
    if not grids:
        raise click.UsageError(
            "no data for the selected stations (load and transform first, or use --recorded)"
        )
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    steps = len(window.refits) * len(POLLUTANTS) * len(HORIZONS)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("backtest", total=steps)
        result = run_backtest(
            grids,
            window.start,
            window.end,
            timezones=timezones,
            params=params,
            on_refit=lambda message: progress.update(task, advance=1, description=message),
        )
    table = Table(
        title=f"Backtest {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC ({result.refits} weekly "
        f"refits, {result.seconds:.0f} s)",
        title_justify="left",
    )
    for col in (
        "station",
        "pollutant",
        "horizon",
        "n",
        "MAE model",
        "MAE persistence",
        "MAE blend",
        "skill",
        "best",
    ):
        table.add_column(col)
    for r in result.results:
        table.add_row(
            names.get(r.station_id, r.station_id),
            r.pollutant,
            f"+{r.horizon_h} h",
            str(r.n),
            _fmt(r.mae_model),
            _fmt(r.mae_persistence),
            _fmt(r.mae_blend),
            _fmt(r.skill, 2),
            r.best or r.status.replace("_", " "),
        )
    console.print(table)
    for reason in dict.fromkeys(
        f"{names.get(r.station_id, r.station_id)} {r.pollutant}: {r.reason}"
        for r in result.results
        if r.reason
    ):
        console.print(reason)
    if plot_path is not None:
        from elt.forecast.plot import plot_backtest

        console.print(f"plot: {plot_backtest(result, plot_path, days=plot_days, names=names)}")
    if as_json:
        click.echo(json.dumps({"results": [r.to_json() for r in result.results]}))
