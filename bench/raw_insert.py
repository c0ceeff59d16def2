"""The server's own bulk-insert rate, for W4: ``insert_many`` of documents already in memory, nothing else.

Reads the documents of a source collection (the raw rows our load just landed; not timed), then times
``insert_many`` of them in batches into a fresh collection, optionally with the same unique
``(station_id, ts)`` index our raw collection has. Prints one JSON line.

    MONGO_URI=... python -m bench.raw_insert --database bench_w4 --source raw_airqino_hourly --unique-index
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from pymongo import ASCENDING, MongoClient


def measure(uri: str, database: str, source: str, batch: int, unique_index: bool) -> dict[str, Any]:
    """Copy ``source`` into ``<source>_rawcopy`` by ``insert_many``; returns documents, seconds and the rate."""
    client: MongoClient = MongoClient(uri, directConnection=True, tz_aware=True)
    db = client[database]
    target = db[f"{source}_rawcopy"]
    target.drop()
    if unique_index:
        target.create_index([("station_id", ASCENDING), ("ts", ASCENDING)], unique=True)
    documents = list(db[source].find())
    started = time.perf_counter()
    for start in range(0, len(documents), batch):
        target.insert_many(documents[start : start + batch], ordered=False)
    seconds = time.perf_counter() - started
    target.drop()
    client.close()
    return {
        "documents": len(documents),
        "batch": batch,
        "unique_index": unique_index,
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(documents) / seconds, 1) if seconds else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: one measurement, JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument(
        "--source", default="raw_airqino_hourly", help="Collection whose documents are copied."
    )
    parser.add_argument("--batch", type=int, default=1000, help="Documents per insert_many call.")
    parser.add_argument(
        "--unique-index", action="store_true", help="Create the (station_id, ts) unique index."
    )
    args = parser.parse_args(argv)
    uri = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
    print(json.dumps(measure(uri, args.database, args.source, args.batch, args.unique_index)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
