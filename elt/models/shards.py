"""Station shards: ``--shard i/N`` splits the per-station work of a step (load, staging) into N parts.

Stations are independent until the marts: the API is fetched per station and ``stg_airqino_hourly`` is
partitioned by station. A shard is a fixed slice of the enabled stations: sorted by id, the k-th station
(0-based) belongs to shard ``k mod N``. Every shard gets the same number of stations (give or take one), and
the assignment depends only on the enabled ids and ``N``. Adding a station can move others to another shard;
that is harmless, because the interval state of the per-station models is kept per station
(``elt.transform.sharded``), not per shard: whichever shard builds a station next goes on from that station's
own watermark. Shards are numbered 0 .. N-1; with fewer stations than shards some are empty (they do nothing,
successfully).

What a shard runs (see ``elt run --shard`` / ``--after-shards`` and the Airflow DAG):

- ``load``: ``LoadTask`` over the shard's stations only;
- ``transform``: the per-station models (``PER_STATION_SELECTOR``, the staging models) for the shard's
  stations, with their own interval state per shard (``elt.transform.sharded``);
- after all shards, one ``--after-shards`` call runs the models that combine stations (every model but the
  per-station ones) and the later steps, reading the change records the shards left.

Which steps a shard may run, and the lease check, are the run's business: ``elt.run.shards``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pymongo.database import Database

from elt.errors import ConfigError
from elt.models.changes import CHANGES_COLLECTION, RunChanges, read_changes, record_changes

#: The models a shard transforms: those partitioned by station (the rest combine stations: after all shards).
PER_STATION_SELECTOR = "tag:staging"
#: Suffix of the change record a shard's transform writes (merged into the run's record after all shards).
SHARD_RECORD_SEPARATOR = "#shard-"

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    @property
    def label(self) -> str:
        """``i/N``, as given on the command line."""
        return f"{self.index}/{self.count}"

    @property
    def slug(self) -> str:
        """``i-of-N``: for ids and names that must not contain a slash."""
        return f"{self.index}-of-{self.count}"

    def stations(self, station_ids: Iterable[str]) -> list[str]:
        """The ids of ``station_ids`` (all the enabled ones) in this shard, in their given order.

        Sorted by id, the k-th station belongs to shard ``k mod N``.
        """
        ids = list(dict.fromkeys(str(s) for s in station_ids))
        mine = {sid for k, sid in enumerate(sorted(ids)) if k % self.count == self.index}
        return [s for s in ids if s in mine]


def parse_shard(text: str) -> Shard:
    """``"i/N"`` (0 <= i < N) as a Shard; a ConfigError saying what is expected otherwise."""
    match = _SHARD.match(str(text))
    if not match:
        raise ConfigError(f"--shard {text!r}: expected i/N with 0 <= i < N, e.g. 0/3 (shards count from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ConfigError(f"--shard {text!r}: the number of shards N must be at least 1")
    if index >= count:
        raise ConfigError(f"--shard {text!r}: shard index {index} out of range: shards are 0 .. {count - 1}")
    return Shard(index, count)


def shard_record_id(run_id: str, shard: Shard) -> str:
    """The id under which a shard's transform records its changes (``<run_id>#shard-i-of-N``)."""
    return f"{run_id}{SHARD_RECORD_SEPARATOR}{shard.slug}"


def merge_shard_changes(db: Database, run_id: str) -> int:
    """Merge the change records of every shard of ``run_id`` into the run's own record; returns how many.

    Shards record apart (they run in parallel and a record is read-modified-written); the single
    ``--after-shards`` call merges them, so the data tests and publish see what every shard changed.
    """
    prefix = re.escape(run_id + SHARD_RECORD_SEPARATOR)
    ids = [d["_id"] for d in db[CHANGES_COLLECTION].find({"_id": {"$regex": f"^{prefix}"}}, {"_id": 1})]
    merged = RunChanges(run_id)
    for shard_id in sorted(ids):
        for collection, change in read_changes(db, shard_id).relations.items():
            merged.add(collection, change)
    if ids:
        record_changes(db, merged)
    return len(ids)
