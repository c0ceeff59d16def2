"""What one run changed: the change records that scope its data tests and its publish.

``elt transform`` already knows, model by model, which partitions it recomputed (the incremental batches, see
``elt.transform.intervals``) and which models it rebuilt in full. It records them here, per run id, in the
``elt_run_changes`` collection, as *scopes*: index-friendly filters of the written documents (equality on the
partition field, a range on the time or day field, e.g. ``{"station_id": "283164601", "ts": {"$gte": a,
"$lte": b}}``). A relation rebuilt in full is recorded as ``full``. The forecast step adds the forecasts it
wrote. The test step of the same run reads them back (also when it runs in another process, as Airflow tasks
do) and audits only those scopes; publish copies only those scopes.

A relation absent from a run's record did not change in that run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.database import Database

from elt.owned import CHANGES_COLLECTION

#: Change records older than this are removed when a new one is written.
KEEP_DAYS = 14


@dataclass
class RelationChange:
    """What a run changed in one collection: everything (``full``) or the documents matching ``scopes``."""

    full: bool = False
    scopes: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: RelationChange) -> None:
        """Add ``other``'s changes to this one (a full change absorbs every scope)."""
        self.full = self.full or other.full
        self.scopes = [] if self.full else _unique(self.scopes + other.scopes)

    def as_doc(self) -> dict[str, Any]:
        """The stored form."""
        return {"full": self.full, "scopes": [] if self.full else self.scopes}


@dataclass
class RunChanges:
    """Changed relations of one run, keyed by collection name."""

    run_id: str
    relations: dict[str, RelationChange] = field(default_factory=dict)

    def add(self, collection: str, change: RelationChange) -> None:
        """Record ``change`` for ``collection`` (merged with what is already recorded)."""
        current = self.relations.setdefault(collection, RelationChange())
        current.merge(change)

    def add_full(self, collection: str) -> None:
        """Record that ``collection`` was rebuilt or rewritten as a whole."""
        self.add(collection, RelationChange(full=True))

    def add_scopes(self, collection: str, scopes: Iterable[Mapping[str, Any]]) -> None:
        """Record documents of ``collection`` matching any of ``scopes`` as changed (nothing when empty)."""
        scopes = [dict(s) for s in scopes]
        if scopes:
            self.add(collection, RelationChange(scopes=scopes))

    def get(self, collection: str) -> RelationChange | None:
        """The change of ``collection`` in this run, or None when it did not change."""
        return self.relations.get(collection)


def _unique(scopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for scope in scopes:
        key = repr(sorted(scope.items()))
        if key not in seen:
            seen.add(key)
            out.append(scope)
    return out


def range_scope(selector: Mapping[str, Any]) -> dict[str, Any] | None:
    """An index-friendly superset of a batch selector: ``{"$in": [...]}`` becomes ``{"$gte": min, "$lte":
    max}`` (SecantusDB full-scans a leading ``$in``); None for a selector that has no such form (``$or``)."""
    scope: dict[str, Any] = {}
    for name, value in selector.items():
        if name.startswith("$"):
            return None
        if isinstance(value, Mapping) and "$in" in value:
            values = list(value["$in"])
            if not values:
                return None
            scope[name] = {"$gte": min(values), "$lte": max(values)}
        else:
            scope[name] = value
    return scope


def record_changes(db: Database, changes: RunChanges, at: datetime | None = None) -> None:
    """Merge ``changes`` into the stored record of its run (a rerun of a step under the same id adds up)."""
    at = at or datetime.now(timezone.utc)
    stored = read_changes(db, changes.run_id)
    for collection, change in changes.relations.items():
        stored.add(collection, change)
    relations = [{"relation": name, **change.as_doc()} for name, change in sorted(stored.relations.items())]
    collection = db[CHANGES_COLLECTION]
    collection.replace_one({"_id": changes.run_id}, {"_id": changes.run_id, "at": at, "relations": relations},
                           upsert=True)  # fmt: skip
    collection.delete_many({"at": {"$lt": at - timedelta(days=KEEP_DAYS)}})


def read_changes(db: Database, run_id: str) -> RunChanges:
    """The stored change record of ``run_id`` (empty when the run changed nothing or recorded nothing)."""
    doc = db[CHANGES_COLLECTION].find_one({"_id": run_id}) or {}
    changes = RunChanges(run_id)
    for entry in doc.get("relations", []):
        changes.relations[entry["relation"]] = RelationChange(
            bool(entry.get("full")), list(entry.get("scopes", []))
        )
    return changes


def has_record(db: Database, run_id: str) -> bool:
    """Whether a transform of ``run_id`` recorded its changes (False: nothing is known, audit everything)."""
    return db[CHANGES_COLLECTION].find_one({"_id": run_id}, {"_id": 1}) is not None
