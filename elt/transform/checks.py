"""Data tests: each compiled to aggregations that return the failing documents (or failing groups).

A test passes when it returns nothing. ``severity: warn`` turns a failure into a warning (exit code 0).
Tests that compare two relations or per-group time spans run a few small, index-friendly queries instead of
one ``$lookup`` (equality lookups use the indexes on every server).

Audits: given *scopes* (the partitions a run wrote, from ``elt.models.changes``: equality on the partition
field plus a range on its time/day field), a test reads only those documents, one index-friendly query per
scope, the scope as the leading ``$match`` and every other predicate after it. A test whose result cannot be
decided from the scopes alone (a ``unique`` key that does not contain the scope's fields, a completeness
group that is not a scope's partition) runs in full.
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
from elt.owned import FAILURES_COLLECTION
from elt.transform.intervals import STATE_COLLECTION

#: Failing documents kept per test (in run results and the audit collection); the count is always exact.
SAMPLE_SIZE = 100


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


def _run_scoped(db: Database, collection: str, pipeline: list[dict[str, Any]],
                scopes: list[dict[str, Any]]) -> tuple[int, list[dict]]:  # fmt: skip
    """``pipeline`` once per scope (the scope as its leading, index-friendly ``$match``), results added up."""
    count, sample = 0, []
    for scope in scopes:
        n, rows = _run_pipeline(db, collection, [{"$match": scope}] + pipeline)
        count += n
        sample.extend(rows[: SAMPLE_SIZE - len(sample)])
    return count, sample


def _equalities(scope: dict[str, Any]) -> dict[str, Any]:
    """The equality part of a scope (its partition), e.g. ``{"station_id": "x"}``."""
    return {k: v for k, v in scope.items() if not isinstance(v, dict)}


def _scope_is_exact_for(test: TestNode, scopes: list[dict[str, Any]]) -> bool:
    """Whether scoped results equal full results restricted to the changed documents.

    Document-level tests always are. ``unique`` is when its key contains every field of every scope (two
    documents with one key then fall in the same scope); completeness and relationships when they group by
    (or check) exactly the scopes' partition.
    """
    if test.kind in ("not_null", "accepted_values", "accepted_range", "relationships"):
        return True
    if test.kind == "unique":
        return all(set(scope) <= set(test.args.columns) for scope in scopes)
    if test.kind == "completeness":
        return bool(test.args.group_by) and all(
            set(_equalities(s)) == set(test.args.group_by) for s in scopes
        )
    return False


def _relationships(db: Database, mp: ModelProject, test: TestNode, collection: str,
                   scopes: list[dict[str, Any]] | None = None) -> tuple[int, list[dict]]:  # fmt: skip
    """Values of the column missing from the parent's field. In an audit, each value is first looked up in the
    parent within the scope it came from (e.g. the station-days of a daily row in staging: an index range);
    only when that finds nothing is the parent searched by the value alone (on SecantusDB that reads every
    parent document with the value, e.g. a station's whole history)."""
    args = test.args
    parent = mp.collection_of(next(d for d in test.depends_on if d != test.attached_to))
    counts: dict[Any, int] = {}
    origins: dict[Any, list[dict[str, Any]]] = {}
    for scope in scopes if scopes is not None else [None]:
        leading = [{"$match": scope}] if scope is not None else []
        for row in db[collection].aggregate(
            leading + _where(test) + [{"$match": {args.column: {"$ne": None}}},
                                      {"$group": {"_id": f"${args.column}", "count": {"$sum": 1}}}]
        ):  # fmt: skip
            counts[row["_id"]] = counts.get(row["_id"], 0) + row["count"]
            if scope is not None:
                origins.setdefault(repr(row["_id"]), []).append(scope)

    def present(value: Any) -> bool:
        for scope in origins.get(repr(value), []):
            probe = {**scope, args.field: value}
            if args.field in scope and scope[args.field] != value:
                continue
            if db[parent].find_one(probe, {"_id": 1}) is not None:
                return True
        return db[parent].find_one({args.field: value}, {"_id": 1}) is not None

    missing = [{args.column: value, "count": count, "missing_in": f"{parent}.{args.field}"}
               for value, count in counts.items() if not present(value)]  # fmt: skip
    return len(missing), missing[:SAMPLE_SIZE]


def _completeness(db: Database, test: TestNode, collection: str,
                  scopes: list[dict[str, Any]] | None = None) -> tuple[int, list[dict]]:  # fmt: skip
    args = test.args
    key = {name: f"${name}" for name in args.group_by} or None
    counted_if = args.counted_if or {}
    failing = []
    if scopes is not None:
        groups = _scoped_completeness_groups(db, test, collection, scopes)
    elif args.event_time is None:
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
            # the group's equality + time range leads (index order); where/counted_if apply after it
            filters = [{"$match": f} for f in (args.where, counted_if) if f]
            expected = int((last - first) / step) + 1
            groups.append(
                (span["_id"], expected, _count(db, collection, [{"$match": in_span}] + filters), first, last)
            )
    for group, expected, counted, first, last in groups:
        ratio = counted / expected if expected else 1.0
        if ratio < args.min_ratio:
            row = {**(group or {}), "expected": expected, "counted": counted, "ratio": round(ratio, 4)}
            if first is not None:
                row |= {"from": first, "to": last}
            failing.append(row)
    return len(failing), failing[:SAMPLE_SIZE]


def _count(db: Database, collection: str, pipeline: list[dict[str, Any]]) -> int:
    rows = list(db[collection].aggregate(pipeline + [{"$count": "n"}]))
    return rows[0]["n"] if rows else 0


def _scoped_completeness_groups(db: Database, test: TestNode, collection: str,
                                scopes: list[dict[str, Any]]) -> list[tuple[Any, int, int, Any, Any]]:  # fmt: skip
    """The completeness groups of the scopes' partitions, each read through index-friendly queries only.

    With ``event_time`` and ``recent``: the group's newest row is found from the scope's start onward, and only
    the ``recent`` span before it is counted, so the cost follows the span, not the history.
    """
    args = test.args
    where = _where(test)
    counted_if = [{"$match": args.counted_if}] if args.counted_if else []
    coll = db[collection]
    partitions: dict[str, tuple[dict[str, Any], Any, Any]] = {}
    for scope in scopes:
        group = _equalities(scope)
        bounds = scope.get(args.event_time) if args.event_time else None
        low = bounds.get("$gte") if isinstance(bounds, dict) else None
        high = bounds.get("$lte") if isinstance(bounds, dict) else None
        known = partitions.get(repr(sorted(group.items())))
        if known is not None:  # the union of the group's scopes (an open end stays open)
            low = None if low is None or known[1] is None else min(low, known[1])
            high = None if high is None or known[2] is None else max(high, known[2])
        partitions[repr(sorted(group.items()))] = (group, low, high)
    groups = []
    for group, low, high in partitions.values():
        if args.event_time is None or args.recent is None or where:
            # no bounded span: count the whole group (equality on the partition, then the predicates)
            leading = [{"$match": group}] + where
            if args.event_time is None:  # both counts from one read of the group
                facet = {"expected": [{"$count": "n"}], "counted": [*counted_if, {"$count": "n"}]}
                counts = next(coll.aggregate(leading + [{"$facet": facet}]))
                expected, counted = ((counts[k] or [{"n": 0}])[0]["n"] for k in ("expected", "counted"))
                groups.append((group, expected, counted, None, None))
                continue
            spans = list(coll.aggregate(leading + [{"$group": {"_id": None, "first": {"$min": f"${args.event_time}"},
                                                               "last": {"$max": f"${args.event_time}"}}}]))  # fmt: skip
            if not spans:
                continue
            first, last = spans[0]["first"], spans[0]["last"]
        else:
            # SecantusDB reads every document of a query's range whatever its limit: probe the short range
            # first (from the scope's end: the newest is usually there), then the one that settles it
            newest = None
            for start in (high, low) if high is not None else (low,):
                tail = {**group, args.event_time: {"$gte": start}} if start is not None else group
                newest = coll.find_one(tail, {args.event_time: 1}, sort=[(args.event_time, -1)])
                if newest is not None:
                    break
            if newest is None:
                continue
            last = newest[args.event_time]
            step = timedelta(hours=1) if args.interval == "hour" else timedelta(days=1)
            cutoff = last - timedelta(seconds=duration_seconds(args.recent)) + step
            # bounded probes (an open range to the past reads the group's whole history): the step before the
            # cutoff, then the whole recent span before it
            recent_span = timedelta(seconds=duration_seconds(args.recent))
            older = None
            for span in (min(step, recent_span), recent_span):
                older = coll.find_one({**group, args.event_time: {"$gte": cutoff - span, "$lt": cutoff}},
                                      {"_id": 1})  # fmt: skip
                if older is not None:
                    break
            if older is not None:
                first = cutoff
            else:
                oldest = coll.find_one({**group, args.event_time: {"$gte": cutoff}}, {args.event_time: 1},
                                       sort=[(args.event_time, 1)])  # fmt: skip
                first = oldest[args.event_time] if oldest else last
        step = timedelta(hours=1) if args.interval == "hour" else timedelta(days=1)
        if args.recent is not None:
            first = max(first, last - timedelta(seconds=duration_seconds(args.recent)) + step)
        span = [{"$match": {**group, args.event_time: {"$gte": first, "$lte": last}}}] + where + counted_if
        expected = int((last - first) / step) + 1
        groups.append((group, expected, _count(db, collection, span), first, last))
    return groups


def _freshness_newest(db: Database, test: TestNode, collection: str, loaded_at: str, now: datetime,
                      scopes: list[dict[str, Any]] | None) -> tuple[list[Any], dict[Any, Any]]:  # fmt: skip
    """(groups, newest loaded-at per group). A full pass aggregates every load within the error horizon and
    caches the result in ``elt_state``; an audit updates that cache from the changed scopes only (a group's
    newest load can only have moved where this run wrote)."""
    spec = test.args
    key = f"${spec.group_by}" if spec.group_by else None
    state = db[STATE_COLLECTION]
    cache_id = f"freshness:{test.unique_id}"
    cached = state.find_one({"_id": cache_id}) if scopes is not None else None
    if cached is None:
        limits = [t.seconds() for t in (spec.warn_after, spec.error_after) if t is not None]
        horizon = now - timedelta(seconds=max(limits))
        match = {loaded_at: {"$gt": horizon}}
        filters = [{"$match": spec.filter}] if spec.filter else []
        # the indexed range first, the filter after it (a leading mixed filter full-scans on SecantusDB)
        newest = {r["_id"]: r["newest"] for r in db[collection].aggregate(
            [{"$match": match}, *filters, {"$group": {"_id": key, "newest": {"$max": f"${loaded_at}"}}}])}  # fmt: skip
        groups = db[collection].distinct(spec.group_by, spec.filter or {}) if spec.group_by else [None]
    else:
        groups = list(cached.get("groups", []))
        newest = {entry["group"]: entry["newest"] for entry in cached.get("newest", [])}
        filters = [{"$match": spec.filter}] if spec.filter else []
        for scope in scopes or []:
            for row in db[collection].aggregate(
                [{"$match": scope}, *filters, {"$group": {"_id": key, "newest": {"$max": f"${loaded_at}"}}}]
            ):  # fmt: skip
                if row["_id"] not in groups:
                    groups.append(row["_id"])
                if row["newest"] is not None and (
                    newest.get(row["_id"]) is None or row["newest"] > newest[row["_id"]]
                ):
                    newest[row["_id"]] = row["newest"]
    state.replace_one({"_id": cache_id}, {"_id": cache_id, "groups": groups, "at": now,
                                          "newest": [{"group": g, "newest": v} for g, v in newest.items()]},
                      upsert=True)  # fmt: skip
    return groups, newest


def _freshness(db: Database, test: TestNode, collection: str, loaded_at: str, now: datetime,
               scopes: list[dict[str, Any]] | None = None) -> TestOutcome:  # fmt: skip
    spec = test.args
    groups, recent = _freshness_newest(db, test, collection, loaded_at, now, scopes)
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


def run_test(db: Database, mp: ModelProject, test: TestNode, now: datetime,
             scopes: list[dict[str, Any]] | None = None) -> TestOutcome:  # fmt: skip
    """Execute one test; an unreachable relation or server error gives status ``error``.

    ``scopes`` (the partitions a run wrote; None = everything) restrict it to those documents when that gives
    the same verdict on them (see ``_scope_is_exact_for``), else the test runs in full.
    """
    collection = mp.collection_of(test.attached_to)
    if scopes is not None and test.kind != "freshness" and not _scope_is_exact_for(test, scopes):
        scopes = None
    try:
        if collection not in db.list_collection_names(filter={"name": collection}):
            return TestOutcome("error", 0, message=f"collection '{collection}' does not exist yet; run elt transform "
                               "(or elt load for sources) first")  # fmt: skip
        if test.kind == "freshness":
            loaded_at = mp.sources[test.attached_to].spec.loaded_at_field or ""
            if not loaded_at:
                return TestOutcome("error", 0, message="freshness needs loaded_at_field on the source")
            return _freshness(db, test, collection, loaded_at, now, scopes)
        pipeline = compile_test(test)
        if pipeline is not None:
            if scopes is None:
                failures, sample = _run_pipeline(db, collection, pipeline)
            else:
                failures, sample = _run_scoped(db, collection, pipeline, scopes)
        elif test.kind == "relationships":
            failures, sample = _relationships(db, mp, test, collection, scopes)
        else:
            failures, sample = _completeness(db, test, collection, scopes)
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
