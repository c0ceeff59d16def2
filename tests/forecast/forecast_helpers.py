"""Synthetic staging-shaped hourly rows for the forecast tests: a daily cycle plus persistent noise."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from elt.forecast.series import MEASURES

START = datetime(2024, 5, 1, tzinfo=timezone.utc)


def synthetic_staging(
    station_ids: tuple[str, ...] = ("283164601", "283181971"),
    days: int = 42,
    start: datetime = START,
    seed: int = 7,
    dead_co: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Staging rows for ``days`` days per station; CO of ``dead_co`` stations reads 0 and is flagged dead.

    The newest row of each station is provisional (flagged, like staging).
    """
    rng = np.random.default_rng(seed)
    hours = pd.date_range(start, periods=days * 24, freq="h")
    frames = []
    for k, station_id in enumerate(station_ids):
        phase = 2 * np.pi * (hours.hour.to_numpy() - 8) / 24
        noise = np.zeros(len(hours))
        for i in range(1, len(hours)):
            noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 1.0)
        pm25 = np.clip(12 + 4 * k + 5 * np.sin(phase) + 2 * noise, 1, None)
        co = np.clip(0.15 + 0.1 * np.sin(phase) + 0.03 * noise, 0, None)
        frame = pd.DataFrame({"station_id": station_id, "ts": hours, "provisional": False})
        values = {
            "co": co,
            "pm25": pm25,
            "pm10": pm25 * 1.6 + rng.normal(0, 1, len(hours)),
            "no2": 15 + rng.normal(0, 1, len(hours)),
            "o3": 30 + 5 * np.cos(phase),
            "t": 28 + 3 * np.sin(phase),
            "rh": 75 - 10 * np.sin(phase),
        }
        for measure in MEASURES:
            frame[measure] = values[measure]
            frame[f"{measure}_valid"] = True
            frame[f"{measure}_flag"] = None
        if station_id in dead_co:
            frame["co"] = 0.0
            frame["co_valid"] = False
            frame["co_flag"] = "dead"
        frame.loc[frame.index[-1], "provisional"] = True
        for measure in MEASURES:
            frame.loc[frame.index[-1], f"{measure}_valid"] = False
            frame.loc[frame.index[-1], f"{measure}_flag"] = "provisional"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def staging_documents(frame: pd.DataFrame) -> list[dict]:
    """The frame as ``stg_airqino_hourly`` documents (UTC datetimes, local day/hour for Africa/Abidjan = UTC)."""
    docs = []
    for row in frame.to_dict("records"):
        ts = pd.Timestamp(row["ts"]).to_pydatetime()
        ts = ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts
        doc = {"station_id": row["station_id"], "station_name": row["station_id"], "ts": ts,
               "day": f"{ts:%Y-%m-%d}", "hour_local": ts.hour, "provisional": bool(row["provisional"])}  # fmt: skip
        for measure in MEASURES:
            doc[measure] = float(row[measure])
            doc[f"{measure}_flag"] = row[f"{measure}_flag"]
            doc[f"{measure}_valid"] = bool(row[f"{measure}_valid"])
        doc["_updated_at"] = datetime(2024, 1, 1, tzinfo=timezone.utc)
        docs.append(doc)
    return docs
