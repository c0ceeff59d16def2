"""Data tests: each compiled to aggregations that return the failing documents (or failing groups).

A test passes when it returns nothing. ``severity: warn`` turns a failure into a warning (exit code 0).
Tests that compare two relations or per-group time spans run a few small, index-friendly queries instead of
one ``$lookup`` (equality lookups use the indexes on every server).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.models.project import ModelProject
from elt.models.schema import duration_seconds
from elt.models.tests_spec import TestNode

#: Failing documents kept per test (in run results and the audit collection); the count is always exact.
SAMPLE_SIZE = 100
#: Where ``--store-failures`` writes failing documents.
FAILURES_COLLECTION = "elt_test_failures"


@dataclass
class TestOutcome:
    """Result of one data test."""

    status: str  # pass | warn | fail | error
    failures: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


def _where(test: TestNode) -> list[dict[str, Any]]:
    where = getattr(test.args, "where", None)
    return [{"$match": where}] if where else []


def compile_test(test: TestNode) -> list[dict[str, Any]] | None:
    """The aggregation returning failing documents of a single-query test, or None for multi-query tests."""
    args = test.args
    if test.kind == "not_null":
        return _where(test) + [{"$match": {args.column: None}}]
    if test.kind == "unique":
        key = {name: f"${name}" for name in args.columns}
        return _where(test) + [
            {"$group": {"_id": key, "count": {"$sum": 1}}},
            {"$match": {"count": {"$gt": 1}}},
            {"$replaceWith": {"$mergeObjects": ["$_id", {"count": "$count"}]}},
        ]
    if test.kind == "accepted_values":
        return _where(test) + [{"$match": {args.column: {"$nin": list(args.values), "$ne": None}}}]
    if test.kind == "accepted_range":
        low, high = ("$lt", "$gt") if args.inclusive else ("$lte", "$gte")
        outside = []
        if args.min_value is not None:
            outside.append({args.column: {low: args.min_value}})
        if args.max_value is not None:
            outside.append({args.column: {high: args.max_value}})
        return _where(test) + [{"$match": {"$or": outside}}]
    return None


def _run_pipeline(db: Database, collection: str, pipeline: list[dict[str, Any]]) -> tuple[int, list[dict]]:
    facet = {"$facet": {"count": [{"$count": "n"}], "sample": [{"$limit": SAMPLE_SIZE}]}}
    result = next(db[collection].aggregate(pipeline + [facet], allowDiskUse=True))
    count = result["count"][0]["n"] if result["count"] else 0
    return count, result["sample"]


def _relationships(db: Database, mp: ModelProject, test: TestNode, collection: str) -> tuple[int, list[dict]]:
    args = test.args
    parent = mp.collection_of(next(d for d in test.depends_on if d != test.attached_to))
    values = list(db[collection].aggregate(
        _where(test) + [{"$match": {args.column: {"$ne": None}}},
                        {"$group": {"_id": f"${args.column}", "count": {"$sum": 1}}}]
    ))  # fmt: skip
    missing = [{args.column: v["_id"], "count": v["count"], "missing_in": f"{parent}.{args.field}"}
               for v in values if db[parent].find_one({args.field: v["_id"]}, {"_id": 1}) is None]  # fmt: skip
    return len(missing), missing[:SAMPLE_SIZE]


def _completeness(db: Database, test: TestNode, collection: str) -> tuple[int, list[dict]]:
    args = test.args
    key = {name: f"${name}" for name in args.group_by} or None
    counted_if = args.counted_if or {}
    failing = []
    if args.event_time is None:
        totals = {repr(r["_id"]): r for r in db[collection].aggregate(
            _where(test) + [{"$group": {"_id": key, "expected": {"$sum": 1}}}])}  # fmt: skip
        counted = {repr(r["_id"]): r["n"] for r in db[collection].aggregate(
            _where(test) + [{"$match": counted_if}, {"$group": {"_id": key, "n": {"$sum": 1}}}])}  # fmt: skip
        groups = [(r["_id"], r["expected"], counted.get(k, 0), None, None) for k, r in totals.items()]
    else:
        step = timedelta(hours=1) if args.interval == "hour" else timedelta(days=1)
        spans = db[collection].aggregate(_where(test) + [
            {"$group": {"_id": key, "first": {"$min": f"${args.event_time}"}, "last": {"$max": f"${args.event_time}"}}}
        ])  # fmt: skip
        groups = []
        for span in spans:
            first, last = span["first"], span["last"]
            if args.recent is not None:
                first = max(first, last - timedelta(seconds=duration_seconds(args.recent)) + step)
            in_span = {**(span["_id"] or {}), args.event_time: {"$gte": first, "$lte": last}}
            query = {"$and": [args.where or {}, counted_if, in_span]}
            expected = int((last - first) / step) + 1
            groups.append((span["_id"], expected, db[collection].count_documents(query), first, last))
    for group, expected, counted, first, last in groups:
        ratio = counted / expected if expected else 1.0
        if ratio < args.min_ratio:
            row = {**(group or {}), "expected": expected, "counted": counted, "ratio": round(ratio, 4)}
            if first is not None:
                row |= {"from": first, "to": last}
            failing.append(row)
    return len(failing), failing[:SAMPLE_SIZE]


def _freshness(db: Database, test: TestNode, collection: str, loaded_at: str, now: datetime) -> TestOutcome:
    spec = test.args
    limits = [t.seconds() for t in (spec.warn_after, spec.error_after) if t is not None]
    horizon = now - timedelta(seconds=max(limits))
    key = f"${spec.group_by}" if spec.group_by else None
    match = {**(spec.filter or {}), loaded_at: {"$gt": horizon}}
    recent = {r["_id"]: r["newest"] for r in db[collection].aggregate(
        [{"$match": match}, {"$group": {"_id": key, "newest": {"$max": f"${loaded_at}"}}}])}  # fmt: skip
    groups = db[collection].distinct(spec.group_by, spec.filter or {}) if spec.group_by else [None]
    status, failing = "pass", []
    for group in groups:
        newest = recent.get(group)
        age = (now - newest).total_seconds() if newest is not None else None
        level = "pass"
        if spec.error_after and (age is None or age > spec.error_after.seconds()):
            level = "error"
        elif spec.warn_after and (age is None or age > spec.warn_after.seconds()):
            level = "warn"
        if level != "pass":
            failing.append({spec.group_by or "relation": group if spec.group_by else collection,
                            "newest": newest, "age_hours": round(age / 3600, 2) if age is not None else None,
                            "level": level})  # fmt: skip
            status = "fail" if level == "error" or status == "fail" else "warn"
    message = (
        f"{len(failing)} of {len(groups)} {'groups' if spec.group_by else 'relation'} stale"
        if failing
        else ""
    )
    return TestOutcome(status, len(failing), failing[:SAMPLE_SIZE], message)


def run_test(db: Database, mp: ModelProject, test: TestNode, now: datetime) -> TestOutcome:
    """Execute one test; an unreachable relation or server error gives status ``error``."""
    collection = mp.collection_of(test.attached_to)
    try:
        if collection not in db.list_collection_names(filter={"name": collection}):
            return TestOutcome("error", 0, message=f"collection '{collection}' does not exist yet; run elt transform "
                               "(or elt load for sources) first")  # fmt: skip
        if test.kind == "freshness":
            loaded_at = mp.sources[test.attached_to].spec.loaded_at_field or ""
            if not loaded_at:
                return TestOutcome("error", 0, message="freshness needs loaded_at_field on the source")
            return _freshness(db, test, collection, loaded_at, now)
        pipeline = compile_test(test)
        if pipeline is not None:
            failures, sample = _run_pipeline(db, collection, pipeline)
        elif test.kind == "relationships":
            failures, sample = _relationships(db, mp, test, collection)
        else:
            failures, sample = _completeness(db, test, collection)
    except PyMongoError as exc:
        return TestOutcome("error", 0, message=f"{type(exc).__name__}: {str(exc)[:300]}")
    if failures == 0:
        return TestOutcome("pass", 0)
    status = "warn" if test.severity == "warn" else "fail"
    noun = "failing group" if test.kind in ("unique", "completeness", "relationships") else "failing document"
    return TestOutcome(status, failures, sample, f"{failures} {noun}{'s' if failures != 1 else ''}")


def store_failures(db: Database, test: TestNode, outcome: TestOutcome, run_id: str, at: datetime) -> None:
    """Replace the stored failures of ``test`` with this run's (up to SAMPLE_SIZE documents)."""
    audit = db[FAILURES_COLLECTION]
    audit.delete_many({"test": test.unique_id})
    if outcome.sample:
        audit.insert_many([{"test": test.unique_id, "run_id": run_id, "at": at, "status": outcome.status,
                            "failure": {k: v for k, v in doc.items() if k != "_id"} | ({"_source_id": doc["_id"]}
                                                                                      if "_id" in doc else {})}
                           for doc in outcome.sample])  # fmt: skip
