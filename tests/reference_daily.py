"""An independent pandas implementation of the documented QC and daily rules (docs/models.md), the test oracle.

It shares no code with the models: runs are found by keeping, per station and measure, only the hours that
carry a value (a number of a final hour), labelling islands of equal values whose hours are at most
``max_gap_hours + 1`` apart (``cumsum`` of run breaks) and counting their members, where the model uses MongoDB
window functions; local days come from pandas' ``tz_convert``; the AQI table is typed in again from the EPA
2024 breakpoints.

Also ``raw_document``: a raw_airqino_hourly document exactly as the load contract describes it, for tests that
build their input by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

MEASURES = ("co", "pm25", "pm10", "no2", "o3", "t", "rh")
#: (lower limit and its flag, upper limit var) per measure; None = no limit.
LIMITS = {
    "co": (0, "negative", "max_co"),
    "pm25": (0, "negative", "max_pm25"),
    "pm10": (0, "negative", "max_pm10"),
    "no2": (0, "negative", None),
    "o3": (0, "negative", None),
    "t": ("min_t", "out_of_range", "max_t"),
    "rh": (0, "negative", "max_rh"),
}
DEFAULT_VARS = {"min_hours_per_day": 18, "stuck_hours": 6, "dead_zero_hours": 24, "max_gap_hours": 6, "max_co": 50,
                "max_pm25": 1000, "max_pm10": 1000, "who_pm25_24h": 15, "max_rh": 100, "min_t": -50,
                "max_t": 70}  # fmt: skip
#: US EPA 2024 PM2.5 breakpoints: (C_low, C_high, I_low, I_high, category).
EPA_2024 = [
    (0.0, 9.0, 0, 50, "Good"),
    (9.1, 35.4, 51, 100, "Moderate"),
    (35.5, 55.4, 101, 150, "Unhealthy for Sensitive Groups"),
    (55.5, 125.4, 151, 200, "Unhealthy"),
    (125.5, 225.4, 201, 300, "Very Unhealthy"),
    (225.5, 325.4, 301, 500, "Hazardous"),
]
MART_FIELDS = ("station_id", "station_name", "day", "co_mean", "co_min", "co_max", "co_hours", "co_complete",
               "pm25_mean", "pm25_min", "pm25_max", "pm25_hours", "pm25_complete", "pm25_who_exceeded",
               "pm25_aqi", "pm25_aqi_category")  # fmt: skip
KEY_NAMES = {"CO": "co", "PM2.5": "pm25", "PM10": "pm10", "NO2": "no2", "O3": "o3", "T": "t", "RH": "rh",
             "T. int.": "t_int"}  # fmt: skip


def raw_document(station_id: str, ts: datetime, measures: Mapping[str, Any], provisional: bool = False,
                 loaded_at: datetime | None = None, revision: int = 0) -> dict[str, Any]:  # fmt: skip
    """A raw_airqino_hourly document per the load contract (absent measures stay absent)."""
    ts = ts.astimezone(timezone.utc)
    loaded_at = loaded_at or datetime.now(timezone.utc)
    normalized = {k: v for k, v in measures.items()}
    digest = hashlib.sha256(
        json.dumps({"ts": ts.isoformat(), **normalized}, sort_keys=True).encode()
    ).hexdigest()
    return {
        "_id": f"{station_id}|{ts:%Y-%m-%dT%H:00Z}",
        "station_id": station_id,
        "ts": ts,
        **normalized,
        "original_json": json.dumps({"timestamp": f"{ts:%Y-%m-%d %H:%M:%S}", **normalized}),
        "provisional": provisional,
        "_content_hash": digest,
        "_batch_id": "test",
        "_first_seen": loaded_at,
        "_loaded_at": loaded_at,
        "_last_seen": loaded_at,
        "_revision": revision,
    }


def raw_from_api_rows(station_id: str, rows: Iterable[Mapping[str, Any]], provisional_last: bool = True,
                      loaded_at: datetime | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Raw documents from API rows (``{"timestamp": ..., "CO": ..., "PM2.5": ...}``), the newest provisional."""
    docs = []
    rows = sorted(rows, key=lambda r: r["timestamp"])
    for i, row in enumerate(rows):
        ts = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        measures = {KEY_NAMES[k]: float(v) for k, v in row.items() if k in KEY_NAMES}
        docs.append(
            raw_document(station_id, ts, measures, provisional_last and i == len(rows) - 1, loaded_at)
        )
    return docs


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _run_lengths(frame: pd.DataFrame, carried: pd.Series, max_gap_hours: int) -> pd.Series:
    """Per row, the number of hours in the run of the value it carries (NaN where it carries none).

    Only the rows carrying a value take part: a run continues from one of them to the next when the value is
    equal and the hours are at most ``max_gap_hours + 1`` apart (the hours between carry nothing).
    """
    carrying = frame[carried.notna()].assign(_value=carried[carried.notna()])
    by_station = carrying.groupby("station_id")
    continues = (carrying["_value"] == by_station["_value"].shift(1)) & (
        carrying["ts"] - by_station["ts"].shift(1) <= pd.Timedelta(hours=max_gap_hours + 1)
    )
    island = (~continues).groupby(carrying["station_id"]).cumsum()
    sizes = carrying.groupby([carrying["station_id"], island])["ts"].transform("size")
    return sizes.reindex(frame.index).astype(float)


def staging_frame(raw: Iterable[Mapping[str, Any]], stations: Mapping[str, Mapping[str, str]],
                  vars: Mapping[str, Any] | None = None) -> pd.DataFrame:  # fmt: skip
    """Per station-hour: local day/hour, and per measure the numeric value, its flag and validity."""
    v = {**DEFAULT_VARS, **(vars or {})}
    records = []
    for doc in raw:
        record = {"station_id": doc["station_id"], "ts": pd.Timestamp(doc["ts"]).tz_convert("UTC"),
                  "provisional": doc.get("provisional") is True}  # fmt: skip
        for m in MEASURES:
            record[f"{m}__raw"] = doc.get(m)
            record[f"{m}__present"] = doc.get(m) is not None
        records.append(record)
    frame = pd.DataFrame.from_records(records).sort_values(["station_id", "ts"]).reset_index(drop=True)
    frame["station_name"] = [stations.get(s, {}).get("name", s) for s in frame["station_id"]]
    local = [ts.tz_convert(stations.get(s, {}).get("timezone", "UTC")) for s, ts in zip(frame["station_id"],
                                                                                        frame["ts"], strict=True)]  # fmt: skip
    frame["day"] = [t.strftime("%Y-%m-%d") for t in local]
    frame["hour_local"] = [t.hour for t in local]
    for m in MEASURES:
        value = frame[f"{m}__raw"].map(_numeric)
        frame[m] = value
        length = _run_lengths(frame, value.where(~frame["provisional"]), v["max_gap_hours"])
        runnable = length.notna()
        dead = runnable & (value == 0) & (length >= v["dead_zero_hours"])
        stuck = runnable & (value != 0) & (length >= v["stuck_hours"])
        low, low_flag, high = LIMITS[m]
        low_value = v[low] if isinstance(low, str) else low
        flags = []
        for i in range(len(frame)):
            x = value.iat[i]
            if not frame[f"{m}__present"].iat[i]:
                flags.append("missing")
            elif x is None or (isinstance(x, float) and math.isnan(x)):
                flags.append("non_numeric")
            elif x < low_value:
                flags.append(low_flag)
            elif high is not None and x > v[high]:
                flags.append("out_of_range")
            elif frame["provisional"].iat[i]:
                flags.append("provisional")
            elif dead.iat[i]:
                flags.append("dead")
            elif stuck.iat[i]:
                flags.append("stuck")
            else:
                flags.append(None)
        frame[f"{m}_flag"] = flags
        frame[f"{m}_valid"] = [f is None for f in flags]
    return frame


def aqi(mean: float) -> tuple[int, str]:
    """EPA 2024 AQI of a daily PM2.5 mean: truncated to 0.1, linear in its segment, rounded half up."""
    c = math.trunc(mean * 10) / 10
    segment = [s for s in EPA_2024 if s[0] <= c][-1]
    c_low, c_high, i_low, i_high, category = segment
    return math.floor((i_high - i_low) / (c_high - c_low) * (c - c_low) + i_low + 0.5), category


def daily_sensor_averages(raw: Iterable[Mapping[str, Any]], stations: Mapping[str, Mapping[str, str]],
                          vars: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The daily mart rows, sorted by (station_id, day)."""
    v = {**DEFAULT_VARS, **(vars or {})}
    frame = staging_frame(raw, stations, v)
    rows = []
    for (station_id, day), group in frame.groupby(["station_id", "day"], sort=True):
        row: dict[str, Any] = {
            "station_id": station_id,
            "station_name": group["station_name"].iat[0],
            "day": day,
        }
        for p in ("co", "pm25"):
            values = [float(x) for x, ok in zip(group[p], group[f"{p}_valid"], strict=True) if ok]
            row[f"{p}_mean"] = math.fsum(values) / len(values) if values else None
            row[f"{p}_min"] = min(values) if values else None
            row[f"{p}_max"] = max(values) if values else None
            row[f"{p}_hours"] = len(values)
            row[f"{p}_complete"] = len(values) >= v["min_hours_per_day"]
        mean = row["pm25_mean"]
        row["pm25_who_exceeded"] = None if mean is None else mean > v["who_pm25_24h"]
        row["pm25_aqi"], row["pm25_aqi_category"] = aqi(mean) if mean is not None else (None, None)
        rows.append({k: row[k] for k in MART_FIELDS})
    return rows


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    """An aware UTC datetime (shorthand for tests)."""
    return datetime(year, month, day, hour, tzinfo=timezone.utc)


def hours(start: datetime, count: int) -> list[datetime]:
    """``count`` consecutive hour starts from ``start``."""
    return [start + timedelta(hours=i) for i in range(count)]


# --- test plumbing shared by tests/transform/ -----------------------------------------------------

#: The models this suite is about (other parts of the project ship their own models in aggregations/ too).
OWN_MODELS = ["+daily_sensor_averages", "+station_freshness"]
#: Fields the runner stamps on every document; they legitimately differ between two builds.
RUN_FIELDS = ("_id", "_updated_at", "_run_id")


def set_stations(project_dir: Any, stations: list[dict[str, Any]]) -> None:
    """Replace the ``stations:`` of a test project's config/elt.yml."""
    import yaml

    path = project_dir / "config" / "elt.yml"
    config = yaml.safe_load(path.read_text())
    config["stations"] = stations
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def collection_rows(
    db: Any, name: str, sort: tuple[str, ...] = ("station_id", "day")
) -> list[dict[str, Any]]:
    """Documents of ``name`` without the run fields, sorted."""
    docs = db[name].find({}, {f: 0 for f in RUN_FIELDS}).sort([(k, 1) for k in sort])
    return [dict(d) for d in docs]


def assert_rows_equal(
    actual: list[dict[str, Any]], expected: list[dict[str, Any]], what: str = "mart"
) -> None:
    """Row by row, field by field; floats within 1e-9 relative (summation order may differ)."""
    assert [(r["station_id"], r.get("day")) for r in actual] == [
        (r["station_id"], r.get("day")) for r in expected
    ], f"{what}: different rows"
    for got, want in zip(actual, expected, strict=True):
        assert set(got) == set(want), (
            f"{what} {want['station_id']} {want.get('day')}: fields {set(got) ^ set(want)}"
        )
        for key, value in want.items():
            other, where = got[key], f"{what} {want['station_id']} {want.get('day')} {key}"
            if isinstance(value, float) and not isinstance(other, bool):
                assert other is not None and math.isclose(other, value, rel_tol=1e-9, abs_tol=1e-12), (
                    f"{where}: {other!r} != {value!r}"
                )
            else:
                assert other == value and type(other) is type(value), f"{where}: {other!r} != {value!r}"
