"""Helpers of the ``elt run`` tests: compare marts across databases, clone a database."""

from __future__ import annotations

import hashlib
import json

from pymongo import MongoClient
from pymongo.database import Database

#: What "the marts" are when runs are compared (staging included: forecasts are computed from it).
MARTS = (
    "stg_airqino_hourly",
    "daily_sensor_averages",
    "station_freshness",
    "forecasts",
    "forecast_verification",
)
#: Fields that legitimately differ between two runs writing the same data (``_loaded_at``: when elt forecast
#: wrote a forecast).
VOLATILE = ("_id", "_updated_at", "_run_id", "_loaded_at")


def mart_digest(client: MongoClient, database: str) -> dict[str, tuple[int, str]]:
    """Per mart: document count and a hash of the documents without the volatile fields."""
    db = client[database]
    digest = {}
    for name in MARTS:
        rows = []
        for doc in db[name].find({}):
            for key in VOLATILE:  # _id: ObjectIds of $merge inserts; the unique keys are compared as fields
                doc.pop(key, None)
            rows.append(json.dumps(doc, sort_keys=True, default=str))
        rows.sort()
        digest[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
    return digest


def copy_database(client: MongoClient, source: str, target: str) -> None:
    """Clone every collection (documents and indexes) of ``source`` into ``target``."""
    for name in client[source].list_collection_names():
        src, dst = client[source][name], client[target][name]
        for index_name, info in src.index_information().items():
            if index_name != "_id_":
                dst.create_index(info["key"], name=index_name, unique=info.get("unique", False))
        docs = list(src.find({}))
        if docs:
            dst.insert_many(docs)


def forecasts_missing_from_the_chart(db: Database) -> list[dict]:
    """The forecasts that the dashboard's mart ``forecast_vs_observed`` does not show at their target hour."""
    missing = []
    for made in db.forecasts.find({}, {"_id": 0}):
        key = {k: made[k] for k in ("station_id", "pollutant")} | {"ts": made["target_ts"]}
        row = db.forecast_vs_observed.find_one(key)
        if row is None or row[f"forecast_{made['horizon_h']}h"] != made["value"]:
            missing.append(made)
    return missing
