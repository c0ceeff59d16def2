"""Staging-shaped rows straight from a recorded ``getStationHourlyAvg`` response, for benches and tests.

This applies the documented QC (docs/models.md) in pandas so the forecast can be measured on the recorded
real responses without a database. The production path reads ``stg_airqino_hourly`` (``series.read_staging``),
which the transform fills with the same rules; keep the two in step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

#: API keys → normalized measure names (the staging contract).
SOURCE_KEYS: dict[str, str] = {
    "CO": "co",
    "PM2.5": "pm25",
    "PM10": "pm10",
    "NO2": "no2",
    "O3": "o3",
    "T": "t",
    "RH": "rh",
}
#: Physical range per measure (the defaults of the vars ``max_co``, ``max_pm25``, ``max_pm10``, ``max_rh``,
#: ``min_t``, ``max_t`` of config/elt.yml and aggregations/staging/stg_airqino_hourly.yml).
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "co": (0.0, 50.0),
    "pm25": (0.0, 1000.0),
    "pm10": (0.0, 1000.0),
    "no2": (0.0, float("inf")),
    "o3": (0.0, float("inf")),
    "rh": (0.0, 100.0),
    "t": (-50.0, 70.0),
}


def _run_lengths(values: pd.Series, ts: pd.Series) -> pd.Series:
    """Length of the run of equal values each row belongs to; a missing value or a missing hour breaks a run."""
    same = values.eq(values.shift()) & values.notna() & ts.diff().eq(pd.Timedelta(hours=1))
    run_id = (~same).cumsum()
    return run_id.map(run_id.value_counts())


def qc_station_rows(
    rows: pd.DataFrame,
    ranges: dict[str, tuple[float, float]] | None = None,
    stuck_hours: int = 6,
    dead_zero_hours: int = 24,
) -> pd.DataFrame:
    """Flag one station's raw rows (``ts`` plus raw measure columns) the way the staging model does.

    Returns the rows sorted by ``ts`` with, per measure ``m``: ``m`` (float or NaN), ``m_flag`` (None when valid)
    and ``m_valid``. Precedence as in staging: missing, non_numeric, negative (below 0; for ``t`` below its
    minimum it is out_of_range), out_of_range, provisional (the newest row), dead, stuck.
    """
    ranges = DEFAULT_RANGES if ranges is None else ranges
    rows = rows.sort_values("ts").drop_duplicates("ts", keep="last").reset_index(drop=True)
    out = pd.DataFrame({"ts": rows["ts"]})
    out["provisional"] = False
    out.loc[out.index[-1], "provisional"] = True
    final = ~out["provisional"]
    for measure in SOURCE_KEYS.values():
        raw = rows[measure] if measure in rows else pd.Series([None] * len(rows), dtype=object)
        value = pd.to_numeric(raw, errors="coerce").astype(float)
        low, high = ranges.get(measure, (0.0, float("inf")))
        flag = pd.Series([None] * len(rows), dtype=object)
        flag[raw.isna()] = "missing"
        flag[raw.notna() & value.isna()] = "non_numeric"
        flag[flag.isna() & (value < low)] = "negative" if low == 0 else "out_of_range"
        flag[flag.isna() & (value > high)] = "out_of_range"
        flag[flag.isna() & ~final] = "provisional"
        # Runs are made of numeric values of final hours; a missing hour or value breaks them.
        runs = _run_lengths(value.where(final), rows["ts"])
        flag[flag.isna() & (value == 0) & (runs >= dead_zero_hours)] = "dead"
        flag[flag.isna() & (value != 0) & (runs >= stuck_hours)] = "stuck"
        out[measure] = value
        out[f"{measure}_flag"] = flag
        out[f"{measure}_valid"] = flag.isna()
    return out


def read_recorded_response(path: Path, station_id: str | None = None) -> pd.DataFrame:
    """Parse one recorded API response file into QC-flagged staging-shaped rows.

    ``station_id`` defaults to the file name without extension (the recorded files are named by station id).
    """
    payload = json.loads(Path(path).read_text())
    data = payload["data"] if isinstance(payload, dict) else payload
    rows = pd.DataFrame(data).rename(columns=SOURCE_KEYS)
    rows["ts"] = pd.to_datetime(rows["timestamp"], format="%Y-%m-%d %H:%M:%S")
    frame = qc_station_rows(rows)
    frame.insert(0, "station_id", station_id or Path(path).stem)
    return frame


def read_recorded_dir(directory: Path, station_ids: list[str] | None = None) -> pd.DataFrame:
    """Staging-shaped rows for every ``<station_id>.json`` in ``directory`` (or only ``station_ids``)."""
    paths = sorted(Path(directory).glob("*.json"))
    if station_ids is not None:
        paths = [p for p in paths if p.stem in station_ids]
    frames = [read_recorded_response(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["station_id", "ts"])
