"""Single-query data tests of one relation run together: one aggregation per scope for all of them.

``not_null``, ``unique``, ``accepted_values`` and ``accepted_range`` each compile to one pipeline returning
the failing documents (``checks.compile_test``). An audit runs them on every changed scope; one by one that
is tests × scopes small aggregations (~800 per hourly run at 20 stations), each paying the server's fixed
cost of an aggregation. Here each scope is read once: its ``$match`` leads, then one ``$facet`` with a count
and a sample branch per test. The verdicts are those of ``checks.run_test`` on the same scopes. A full pass
(no scopes) keeps one aggregation per test (a ``$facet`` would hold a whole collection in memory).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.models.project import ModelProject
from elt.transform import checks


def _batchable(test: Any, scopes: list[dict[str, Any]] | None) -> bool:
    # a full pass stays one aggregation per test: a $facet holds its whole input in the server's memory
    if scopes is None or checks.compile_test(test) is None:
        return False
    return checks._scope_is_exact_for(test, scopes)


def _outcome(test: Any, failures: int, sample: list[dict[str, Any]]) -> checks.TestOutcome:
    if failures == 0:
        return checks.TestOutcome("pass", 0)
    status = "warn" if test.severity == "warn" else "fail"
    noun = "failing group" if test.kind == "unique" else "failing document"
    return checks.TestOutcome(status, failures, sample, f"{failures} {noun}{'s' if failures != 1 else ''}")


def batched_outcomes(
    db: Database, mp: ModelProject, tests: Iterable[tuple[str, Any, list[dict[str, Any]] | None]]
) -> dict[str, checks.TestOutcome]:
    """Outcomes of the single-query tests among ``tests`` (unique id, test, scopes or None for everything),
    grouped by relation and scopes (audits only); tests left out (or a group whose aggregation failed) run one by one."""
    groups: dict[tuple[str, str], list[tuple[str, Any, list[dict[str, Any]] | None]]] = {}
    for uid, test, scopes in tests:
        if test.kind != "freshness" and _batchable(test, scopes):
            groups.setdefault((mp.collection_of(test.attached_to), repr(scopes)), []).append(
                (uid, test, scopes)
            )
    outcomes: dict[str, checks.TestOutcome] = {}
    existing = set(db.list_collection_names())
    for (collection, _), members in groups.items():
        if len(members) < 2 or collection not in existing:
            continue
        facets: dict[str, list[dict[str, Any]]] = {}
        for i, (_, test, _) in enumerate(members):
            pipeline = checks.compile_test(test) or []
            facets[f"n{i}"] = pipeline + [{"$count": "n"}]
            facets[f"s{i}"] = pipeline + [{"$limit": checks.SAMPLE_SIZE}]
        scopes = members[0][2]
        counts = [0] * len(members)
        samples: list[list[dict[str, Any]]] = [[] for _ in members]
        try:
            for scope in scopes or []:
                row = next(
                    db[collection].aggregate([{"$match": scope}, {"$facet": facets}], allowDiskUse=True)
                )
                for i in range(len(members)):
                    counts[i] += row[f"n{i}"][0]["n"] if row[f"n{i}"] else 0
                    samples[i].extend(row[f"s{i}"][: checks.SAMPLE_SIZE - len(samples[i])])
        except PyMongoError:
            continue  # each test then runs on its own and reports its error
        for i, (uid, test, _) in enumerate(members):
            outcomes[uid] = _outcome(test, counts[i], samples[i])
    return outcomes
