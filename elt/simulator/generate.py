"""Synthetic AirQino stations: a year (or any span) of realistic hourly rows, deterministic for a seed.

Each station's history is cut into week-long blocks (aligned to the epoch); a block is generated from its own
``random.Random("<seed>:<station>:<block>")``, so any hour's row is the same whatever window is asked for, and
moving the clock on by one hour adds one row without changing the older ones. Only the stdlib is used so the
core install can run ``elt simulate`` and the demo.

What the data contains, like the recorded SMART188/SMART189 responses: diurnal traffic peaks (08:00,
19:30 local), quieter weekends, a harmattan season (PM up in December–February), AR(1) noise, missing hours
(rare gaps everywhere; night and weekend outage blocks on ``outages`` stations), ``RH`` absent in about 2 % of
rows, a dead CO sensor reading exactly 0.0 for weeks on ``dead_co_fraction`` stations, short frozen runs (one
measure repeating the same non-zero value for 6–10 hours), low-CO nights reading 0.0 for a few hours,
negatives clipped to 0.0 (as the API does since 2024) and the dotted keys ``PM2.5`` and ``T. int.``.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

#: Hours per generated block (one week): the unit of determinism and caching.
BLOCK_HOURS = 168
#: Probability that a row lacks its ``RH`` key.
RH_MISSING_RATE = 0.02
#: Probability that a week contains one frozen run (6–10 h of one measure repeating the same value).
STUCK_RUN_RATE = 0.25

_NORMAL = [NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096)]  # N(0,1) by 12 random bits
_STUCK_KEYS = ("PM2.5", "PM10", "NO2", "T")
#: Position of each freezable key in the values list of ``generate_block``.
_STUCK_KEYS_INDEX = {"T": 1, "NO2": 3, "PM10": 5, "PM2.5": 6}
_ROW_WITHOUT_RH = (
    '{"timestamp": "%s %02d:00:00", "CO": %.5f, "T": %.5f, "T. int.": %.4f, "NO2": %.5f, "O3": %.5f, '
    '"PM10": %.5f, "PM2.5": %.5f'
)
_ROW_WITH_RH = _ROW_WITHOUT_RH + ', "RH": %s}'
_ROW_WITHOUT_RH += "}"


def _bump(x: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24-hour circle."""
    d = min(abs(x - centre), 24 - abs(x - centre))
    return math.exp(-((d / width) ** 2))


# Diurnal shapes by local hour, mean about 1: traffic (PM, CO, NO2), ozone (afternoon), temperature (cos).
_TRAFFIC = [0.55 + 0.75 * _bump(h, 8, 1.8) + 0.65 * _bump(h, 19.5, 2.2) for h in range(24)]
_TRAFFIC = [v / (sum(_TRAFFIC) / 24) for v in _TRAFFIC]
_OZONE = [math.cos(2 * math.pi * (h - 14) / 24) for h in range(24)]
_HEAT = [math.cos(2 * math.pi * (h - 14.5) / 24) for h in range(24)]
_WEEKDAY = [1.0, 1.0, 1.0, 1.0, 1.05, 0.85, 0.7]  # Monday .. Sunday


def _harmattan(yday: int) -> float:
    """Seasonal PM factor: 1 most of the year, up to 2.2 in mid-January (dry Saharan wind)."""
    d = min(abs(yday - 20), 365 - abs(yday - 20))
    return 1.0 + 1.2 * math.exp(-((d / 28) ** 2))


@dataclass(frozen=True)
class StationSpec:
    """One simulated station and the defects its data should show."""

    id: str
    """The station id of the URL path, e.g. ``283164601``."""
    name: str
    """``header.station_name``, e.g. ``SMART188``."""
    lat: float = 5.3693
    """``header.station_lat``."""
    lon: float = -3.9588
    """``header.station_lon``."""
    utc_offset_hours: int = 0
    """Offset of local time, for the diurnal cycles (Abidjan: 0)."""
    dead_co_fraction: float = 0.0
    """Share of weeks during which the CO sensor is dead (reads exactly 0.0), SMART188-like when high."""
    outages: bool = False
    """Night and weekend outage blocks (absent rows), SMART189-like."""
    pm_level: float = 1.0
    """Scales PM2.5/PM10 (1.0 ≈ SMART188's mean of 8 µg/m³ PM2.5)."""


#: The two stations of the brief, with their known defects.
BRIEF_STATIONS = (
    StationSpec("283164601", "SMART188", 5.3693, -3.9588, dead_co_fraction=0.85, pm_level=1.0),
    StationSpec("283181971", "SMART189", 5.3653, -3.9578, outages=True, pm_level=1.9),
)


def default_stations(count: int = 2, seed: int = 0) -> list[StationSpec]:
    """``count`` stations: the two brief stations first, then synthetic ``SMART2xx`` stations near Abidjan.

    Every fourth synthetic station has a dead CO sensor and every third has outage blocks.
    """
    rng = random.Random(f"{seed}:stations")
    specs = list(BRIEF_STATIONS[:count])
    for i in range(len(specs), count):
        specs.append(
            StationSpec(
                id=str(283200000 + i),
                name=f"SMART{200 + i}",
                lat=round(5.30 + rng.random() * 0.12, 4),
                lon=round(-4.05 + rng.random() * 0.15, 4),
                dead_co_fraction=0.6 if i % 4 == 2 else 0.0,
                outages=i % 3 == 0,
                pm_level=round(0.8 + rng.random() * 1.4, 2),
            )
        )
    return specs


class GeneratedStation:
    """Serves one synthetic station's final hourly rows, generated lazily by week and cached."""

    def __init__(self, spec: StationSpec, seed: int = 0, cache_blocks: int = 64) -> None:
        self.spec = spec
        self.station_id = spec.id
        self.seed = seed
        self._cache: OrderedDict[int, list[tuple[int, str]]] = OrderedDict()
        self._cache_blocks = cache_blocks
        self._lock = threading.Lock()

    def header(self) -> dict[str, Any]:
        """The response header."""
        return {"station_name": self.spec.name, "station_lat": self.spec.lat, "station_lon": self.spec.lon}

    def final_rows(self, first_hour: int, last_hour: int) -> list[tuple[int, str]]:
        """``(hour, row JSON text)`` of every present hour in ``[first_hour, last_hour]``, sorted."""
        rows: list[tuple[int, str]] = []
        first_block, last_block = first_hour // BLOCK_HOURS, last_hour // BLOCK_HOURS
        for block in range(first_block, last_block + 1):
            block_rows = self._block(block)
            if block in (first_block, last_block):
                block_rows = [r for r in block_rows if first_hour <= r[0] <= last_hour]
            rows.extend(block_rows)
        return rows

    def final_row(self, hour: int) -> dict[str, Any] | None:
        """The final row of ``hour`` as a dict, or None when that hour is missing."""
        for h, text in self._block(hour // BLOCK_HOURS):
            if h == hour:
                return json.loads(text)
        return None

    def _block(self, block: int) -> list[tuple[int, str]]:
        with self._lock:
            rows = self._cache.get(block)
            if rows is not None:
                self._cache.move_to_end(block)
                return rows
        rows = generate_block(self.spec, self.seed, block)
        with self._lock:
            self._cache[block] = rows
            while len(self._cache) > self._cache_blocks:
                self._cache.popitem(last=False)
        return rows


def _missing_offsets(spec: StationSpec, rng: random.Random, first_hour: int) -> set[int]:
    """Hour offsets of the block that have no row: rare gaps, one multi-hour outage, night/weekend outages."""
    missing = {i for i in range(BLOCK_HOURS) if rng.random() < 0.002}
    if rng.random() < 0.1:
        start, length = rng.randrange(BLOCK_HOURS), rng.randint(2, 30)
        missing.update(range(start, min(start + length, BLOCK_HOURS)))
    if spec.outages:
        weekend_out = rng.random() < 0.15
        for i in range(BLOCK_HOURS):
            tm = time.gmtime((first_hour + i + spec.utc_offset_hours) * 3600)
            if tm.tm_hour == 20 and rng.random() < 0.12:  # the whole night goes dark, 20:00 to 07:00
                missing.update(range(i, min(i + 11, BLOCK_HOURS)))
            if weekend_out and tm.tm_wday >= 5 and (tm.tm_wday == 6 or tm.tm_hour >= 18):
                missing.add(i)
    return missing


def generate_block(spec: StationSpec, seed: int, block: int) -> list[tuple[int, str]]:
    """The final rows ``(hour, row JSON text)`` of one week-long block of ``spec``'s history."""
    rng = random.Random(f"{seed}:{spec.id}:{block}")
    bits, normal, uniform = rng.getrandbits, _NORMAL, rng.random
    first_hour = block * BLOCK_HOURS
    missing = _missing_offsets(spec, rng, first_hour)
    co_dead = rng.random() < spec.dead_co_fraction
    stuck_start, stuck_end, stuck_key = -1, -1, ""
    if rng.random() < STUCK_RUN_RATE:
        stuck_start = rng.randrange(BLOCK_HOURS - 10)
        stuck_end, stuck_key = stuck_start + rng.randint(6, 10), rng.choice(_STUCK_KEYS)
    stuck_value = 0.0
    pm_base = 8.0 * spec.pm_level * math.exp(-0.06)
    # AR(1) states with unit variance: PM, PM10/PM2.5 ratio, CO, NO2, O3, T, T. int., RH.
    s_pm, s_ratio, s_co, s_no2, s_o3, s_t, s_tint, s_rh = (normal[bits(12)] for _ in range(8))
    g_pm, g_ratio, g_co, g_no2, g_o3, g_t, g_tint, g_rh = (
        math.sqrt(1 - p * p) for p in (0.93, 0.97, 0.7, 0.9, 0.9, 0.9, 0.8, 0.85)
    )
    rows: list[tuple[int, str]] = []
    utc_day = local_day = -1
    for i in range(BLOCK_HOURS):
        s_pm = 0.93 * s_pm + g_pm * normal[bits(12)]
        s_ratio = 0.97 * s_ratio + g_ratio * normal[bits(12)]
        s_co = 0.7 * s_co + g_co * normal[bits(12)]
        s_no2 = 0.9 * s_no2 + g_no2 * normal[bits(12)]
        s_o3 = 0.9 * s_o3 + g_o3 * normal[bits(12)]
        s_t = 0.9 * s_t + g_t * normal[bits(12)]
        s_tint = 0.8 * s_tint + g_tint * normal[bits(12)]
        s_rh = 0.85 * s_rh + g_rh * normal[bits(12)]
        rh_present = uniform() >= RH_MISSING_RATE
        if i in missing:
            continue
        hour = first_hour + i
        local_hour = (hour + spec.utc_offset_hours) % 24
        if hour // 24 != utc_day:
            utc_day, date_text = hour // 24, time.strftime("%Y-%m-%d", time.gmtime(hour * 3600))
        if (hour + spec.utc_offset_hours) // 24 != local_day:  # per-day quantities of the local day
            local_day = (hour + spec.utc_offset_hours) // 24
            tm = time.gmtime(local_day * 86400)
            weekday = _WEEKDAY[tm.tm_wday]
            harm = _harmattan(tm.tm_yday)
            t_day = 27.8 + 1.8 * math.cos(2 * math.pi * (tm.tm_yday - 75) / 365)
        traffic = _TRAFFIC[local_hour] * weekday
        pm25 = pm_base * traffic * harm * math.exp(0.35 * s_pm)
        ratio = 2.2 + 0.8 * (harm - 1) + 0.3 * s_ratio
        co = 0.0 if co_dead else 0.16 * traffic * (0.8 + 0.2 * harm) + 0.05 * s_co - 0.045
        temp = t_day + 3.2 * _HEAT[local_hour] + 0.8 * s_t
        no2 = 19.0 + 1.6 * (traffic - 1) + 1.2 * s_no2
        o3 = 26.0 + 9.0 * _OZONE[local_hour] - 4.0 * (traffic - 1) + 5.0 * s_o3
        values = [
            co if co > 0 else 0.0,
            temp,
            390.0 + 9.0 * (temp - 27.8) + 6.0 * s_tint,
            no2 if no2 > 0 else 0.0,
            o3 if o3 > 0 else 0.0,
            pm25 * (ratio if ratio > 1.15 else 1.15),
            pm25,
        ]
        if stuck_start <= i < stuck_end:
            k = _STUCK_KEYS_INDEX[stuck_key]
            stuck_value = stuck_value or values[k]
            values[k] = stuck_value
        if rh_present:
            rh = 84.0 - 4.5 * (temp - t_day) + 4.0 * s_rh
            values.append("99.8" if rh >= 99.8 else f"{max(rh, 25.0):.5f}")
            text = _ROW_WITH_RH % (date_text, hour % 24, *values)
        else:
            text = _ROW_WITHOUT_RH % (date_text, hour % 24, *values)
        if ": 0.00000" in text:  # the API writes an exact zero as 0.0
            text = text.replace(": 0.00000,", ": 0.0,")
        rows.append((hour, text))
    return rows
