"""W3's baseline: the hourly job as the public solutions to this brief write it, run once.

For every station: GET the whole 365-day window over HTTP, build a pandas DataFrame, group by calendar day,
average CO and PM2.5, and ``insert_many`` the daily rows into MongoDB. Nothing is deduplicated: run hourly, it
re-inserts every day of the year each hour (the bench reports the duplicates this leaves). ``--with-raw`` also
``insert_many``s the hourly rows themselves, as the solutions that keep a raw collection do.

Run it as cron would: ``python -m bench.seed_approach --base-url URL --database DB --station ID ...`` with
``MONGO_URI`` in the environment. Prints one JSON line: rows fetched, documents inserted, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import pandas as pd
import requests
from pymongo import MongoClient

DAILY_COLLECTION = "seed_daily_averages"
RAW_COLLECTION = "seed_raw_hourly"


def extract(base_url: str, station_id: str) -> pd.DataFrame:
    """The station's whole response window as a DataFrame (one row per hour)."""
    response = requests.get(f"{base_url}/v3/getStationHourlyAvg/{station_id}", timeout=120)
    response.raise_for_status()
    return pd.DataFrame(response.json()["data"])


def transform(frame: pd.DataFrame, station_id: str) -> list[dict[str, Any]]:
    """Daily mean CO and PM2.5 by calendar date of the timestamp, as records."""
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["date"] = frame["timestamp"].dt.date
    daily = frame.groupby("date")[["CO", "PM2.5"]].mean().reset_index()
    daily["date"] = daily["date"].astype(str)
    daily = daily.rename(columns={"CO": "co_mean", "PM2.5": "pm25_mean"})
    daily["station_id"] = station_id
    return daily.to_dict("records")


def raw_records(frame: pd.DataFrame, station_id: str) -> list[dict[str, Any]]:
    """The hourly rows as records (dots in keys replaced, as MongoDB drivers advise)."""
    records = frame.rename(columns=lambda c: c.replace(".", "_").replace(" ", "")).to_dict("records")
    for record in records:
        record["station_id"] = station_id
    return records


def run(base_url: str, mongo_uri: str, database: str, stations: list[str], with_raw: bool) -> dict[str, Any]:
    """One hourly run over ``stations``; returns what it did."""
    started = time.perf_counter()
    client: MongoClient = MongoClient(mongo_uri, directConnection=True)
    db = client[database]
    fetched = inserted = 0
    for station_id in stations:
        frame = extract(base_url, station_id)
        fetched += len(frame)
        if with_raw:
            inserted += len(db[RAW_COLLECTION].insert_many(raw_records(frame, station_id)).inserted_ids)
        inserted += len(db[DAILY_COLLECTION].insert_many(transform(frame, station_id)).inserted_ids)
    client.close()
    return {"rows_fetched": fetched, "documents_inserted": inserted, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    """Command line: one run of the seed approach."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="AirQino API (the simulator) base URL.")
    parser.add_argument("--database", required=True, help="MongoDB database to insert into.")
    parser.add_argument("--station", action="append", required=True, help="Station id (repeatable).")
    parser.add_argument("--with-raw", action="store_true", help="Also insert_many the hourly rows.")
    args = parser.parse_args(argv)
    mongo_uri = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
    print(json.dumps(run(args.base_url, mongo_uri, args.database, args.station, args.with_raw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
