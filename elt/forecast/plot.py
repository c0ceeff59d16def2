"""PNG of a backtest: forecast against observed over the last days of the range, one panel per series."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from elt.forecast.backtest import BacktestResult  # noqa: E402

_UNITS = {"co": "CO (mg/m³)", "pm25": "PM2.5 (µg/m³)"}


def plot_backtest(
    result: BacktestResult, path: Path, days: int = 7, names: dict[str, str] | None = None
) -> Path:
    """Write a PNG with observed values and the +1 h / +2 h model forecasts of the last ``days`` days."""
    names = names or {}
    frame = result.predictions
    series = [
        (row.station_id, row.pollutant) for row in result.results if row.status == "ok" and row.horizon_h == 1
    ]
    height = max(1, len(series))
    fig, axes = plt.subplots(height, 1, figsize=(12, 2.8 * height), squeeze=False, sharex=True)
    since = pd.Timestamp(result.end) - pd.Timedelta(days=days)
    for ax, (station_id, pollutant) in zip(axes[:, 0], series, strict=False):
        rows = frame[
            (frame["station_id"] == station_id)
            & (frame["pollutant"] == pollutant)
            & (frame["target_ts"] >= since)
        ]
        hours = pd.date_range(max(since, pd.Timestamp(result.start)), pd.Timestamp(result.end), freq="h")
        observed = rows.drop_duplicates("target_ts").set_index("target_ts")["observed"].reindex(hours)
        ax.plot(hours, observed.to_numpy(), color="black", linewidth=1.4, label="observed")
        for horizon, color in ((1, "tab:blue"), (2, "tab:orange")):
            forecast = rows[rows["horizon_h"] == horizon].set_index("target_ts")["gbm"].reindex(hours)
            ax.plot(hours, forecast.to_numpy(), color=color, linewidth=1.0, label=f"model +{horizon} h")
        skill = [
            r.skill
            for r in result.results
            if (r.station_id, r.pollutant) == (station_id, pollutant) and r.skill is not None
        ]
        skills = ", ".join(f"+{h} h {s:.2f}" for h, s in enumerate(skill, start=1))
        ax.set_title(
            f"{names.get(station_id, station_id)} {_UNITS.get(pollutant, pollutant)}  skill: {skills}",
            fontsize=10,
            loc="left",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, ncol=3)
    if not series:
        axes[0, 0].text(0.5, 0.5, "no series with valid data", ha="center", va="center")
    no_data = sorted(
        {f"{names.get(r.station_id, r.station_id)} {r.pollutant}" for r in result.results if r.status != "ok"}
    )
    if no_data:
        fig.text(
            0.01, 0.005, f"not forecast (no valid data): {', '.join(no_data)}", fontsize=8, color="dimgray"
        )
    fig.suptitle(f"Backtest {result.start:%Y-%m-%d} → {result.end:%Y-%m-%d}: the last {days} days (UTC)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
