"""Fixture marts written straight into MongoDB, in the shapes of the collection contracts.

Ten local days ending yesterday (UTC; both stations are in Africa/Abidjan, UTC+0) with values simple enough to
check by hand. On day index ``i`` (0 = oldest) at hour ``h``:

- PM2.5 = base + 2 i + (h mod 4), base 5 (SMART188) or 30 (SMART189): daily mean base + 2 i + 1.5
- CO = 0.2 + 0.1 k + 0.01 i + 0.05 (h mod 3), k 0 or 1: daily mean 0.25 + 0.1 k + 0.01 i

SMART189 misses PM2.5 for hours 0-7 of day 4 (16 valid hours: incomplete) and stops at 20:00 yesterday.
Forecasts for the last two days are the observation plus a bias per horizon hour (PM2.5 0.5, CO 0.01).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pymongo.database import Database

STATIONS = (("283164601", "SMART188"), ("283181971", "SMART189"))
PM25_BASE = {"283164601": 5.0, "283181971": 30.0}
DAYS = 10
#: Index of the day whose numbers the tests assert (the day before yesterday).
KNOWN_DAY_INDEX = 8
MISSING_PM25 = ("283181971", 4, range(0, 8))
LAST_HOUR_SMART189 = 20
FORECAST_DAYS = 2
#: Forecast error per horizon hour, by pollutant.
FORECAST_BIAS = {"pm25": 0.5, "co": 0.01}


def aqi_pm25(concentration: float | None) -> tuple[int | None, str | None]:
    """US EPA (2024) AQI and category of a 24-h PM2.5 mean."""
    if concentration is None:
        return None, None
    c = int(concentration * 10) / 10
    table = [
        (0.0, 9.0, 0, 50, "Good"),
        (9.1, 35.4, 51, 100, "Moderate"),
        (35.5, 55.4, 101, 150, "Unhealthy for Sensitive Groups"),
        (55.5, 125.4, 151, 200, "Unhealthy"),
        (125.5, 225.4, 201, 300, "Very Unhealthy"),
        (225.5, 325.4, 301, 500, "Hazardous"),
    ]
    for c_lo, c_hi, i_lo, i_hi, name in table:
        if c <= c_hi:
            return round((i_hi - i_lo) / (c_hi - c_lo) * (c - c_lo) + i_lo), name
    return 500, "Hazardous"


@dataclass
class FixtureMarts:
    """The documents written, by collection, and the days they cover."""

    days: list[date]
    collections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def stations(self) -> tuple[tuple[str, str], ...]:
        """(id, name) of the fixture stations (those of the repo's config/elt.yml)."""
        return STATIONS

    @property
    def known_day(self) -> date:
        """The day the tests assert numbers for."""
        return self.days[KNOWN_DAY_INDEX]

    def daily(self, station_id: str, day: date) -> dict[str, Any]:
        """The daily_sensor_averages document of a station-day."""
        return next(
            d
            for d in self.collections["daily_sensor_averages"]
            if d["station_id"] == station_id and d["day"] == day.isoformat()
        )


def _pm25(station_id: str, i: int, h: int) -> float | None:
    sid, day_index, hours = MISSING_PM25
    if station_id == sid and i == day_index and h in hours:
        return None
    return PM25_BASE[station_id] + 2 * i + (h % 4)


def _co(k: int, i: int, h: int) -> float:
    return round(0.2 + 0.1 * k + 0.01 * i + 0.05 * (h % 3), 4)


def build_marts(today: date | None = None) -> FixtureMarts:
    """Every fixture document, computed (not written)."""
    today = today or datetime.now(timezone.utc).date()
    days = [today - timedelta(days=DAYS - i) for i in range(DAYS)]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    marts = FixtureMarts(days=days)
    hourly: list[dict[str, Any]] = []
    observed: dict[tuple[str, str, datetime], float] = {}
    for k, (station_id, name) in enumerate(STATIONS):
        for i, day in enumerate(days):
            last_hour = LAST_HOUR_SMART189 if (station_id == "283181971" and i == DAYS - 1) else 23
            for h in range(last_hour + 1):
                ts = datetime(day.year, day.month, day.day, h, tzinfo=timezone.utc)
                values = {"pm25": _pm25(station_id, i, h), "co": _co(k, i, h)}
                doc: dict[str, Any] = {
                    "station_id": station_id, "station_name": name, "ts": ts, "day": day.isoformat(),
                    "hour_local": h, "provisional": False, "_updated_at": now, "_run_id": "fixture",
                }  # fmt: skip
                for m in ("co", "pm25", "pm10", "no2", "o3", "t", "rh"):
                    value = values.get(m)
                    doc[m] = value
                    doc[f"{m}_flag"] = None if value is not None else "missing"
                    doc[f"{m}_valid"] = value is not None
                    if value is not None:
                        observed[(station_id, m, ts)] = value
                hourly.append(doc)
    marts.collections["stg_airqino_hourly"] = hourly
    marts.collections["daily_sensor_averages"] = _daily(hourly, now)
    marts.collections["station_freshness"] = _freshness(hourly, now)
    forecasts, verification = _forecasts(days, observed)
    marts.collections["forecasts"] = forecasts
    marts.collections["forecast_verification"] = verification
    return marts


def _daily(hourly: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for doc in hourly:
        groups[(doc["station_id"], doc["station_name"], doc["day"])].append(doc)
    daily = []
    for (station_id, name, day), docs in sorted(groups.items()):
        out: dict[str, Any] = {"station_id": station_id, "station_name": name, "day": day}
        for p in ("co", "pm25"):
            values = [d[p] for d in docs if d[p] is not None]
            out[f"{p}_mean"] = round(sum(values) / len(values), 6) if values else None
            out[f"{p}_min"] = min(values) if values else None
            out[f"{p}_max"] = max(values) if values else None
            out[f"{p}_hours"] = len(values)
            out[f"{p}_complete"] = len(values) >= 18
        out["pm25_who_exceeded"] = out["pm25_mean"] is not None and out["pm25_mean"] > 15
        out["pm25_aqi"], out["pm25_aqi_category"] = aqi_pm25(out["pm25_mean"])
        out["_updated_at"], out["_run_id"] = now, "fixture"
        daily.append(out)
    return daily


def _freshness(hourly: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    out = []
    for station_id, name in STATIONS:
        docs = [d for d in hourly if d["station_id"] == station_id]
        for p in ("co", "pm25"):
            out.append(
                {
                    "station_id": station_id,
                    "station_name": name,
                    "pollutant": p,
                    "last_valid_ts": max(d["ts"] for d in docs if d[p] is not None),
                    "last_ts": max(d["ts"] for d in docs),
                    "_updated_at": now,
                }
            )
    return out


def _forecasts(
    days: list[date], observed: dict[tuple[str, str, datetime], float]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    forecasts, errors = [], defaultdict(list)
    first = datetime.combine(days[-FORECAST_DAYS], datetime.min.time(), tzinfo=timezone.utc)
    for station_id, _ in STATIONS:
        for p in ("co", "pm25"):
            for offset in range(FORECAST_DAYS * 24):
                issued_at = first + timedelta(hours=offset)
                if (station_id, p, issued_at) not in observed:
                    continue
                for horizon in (1, 2):
                    target = issued_at + timedelta(hours=horizon)
                    actual = observed.get((station_id, p, target))
                    if actual is None:
                        continue
                    value = round(actual + FORECAST_BIAS[p] * horizon, 4)
                    forecasts.append(
                        {"station_id": station_id, "pollutant": p, "issued_at": issued_at, "target_ts": target,
                         "horizon_h": horizon, "value": value, "model": "fixture", "model_version": "1"}
                    )  # fmt: skip
                    key = (station_id, p, horizon, target.date().isoformat())
                    errors[key].append(
                        (abs(value - actual), abs(observed[(station_id, p, issued_at)] - actual))
                    )
    verification = []
    for (station_id, p, horizon, day), pairs in sorted(errors.items()):
        mae = sum(e for e, _ in pairs) / len(pairs)
        mae_persistence = sum(e for _, e in pairs) / len(pairs)
        verification.append(
            {"station_id": station_id, "pollutant": p, "horizon_h": horizon, "day": day, "n": len(pairs),
             "mae": round(mae, 6), "mae_persistence": round(mae_persistence, 6),
             "skill": round(1 - mae / mae_persistence, 6) if mae_persistence else None}
        )  # fmt: skip
    return forecasts, verification


def write_marts(db: Database, marts: FixtureMarts) -> None:
    """Replace the fixture collections of ``db`` with ``marts``."""
    for name, documents in marts.collections.items():
        db[name].delete_many({})
        if documents:
            db[name].insert_many([dict(d) for d in documents])
