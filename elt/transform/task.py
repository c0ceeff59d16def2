"""The transform and test tasks: validate the project, run the selected nodes in order, write artifacts.

``run_transform`` / ``run_tests`` are what ``elt transform`` / ``elt test`` (and ``elt run``, Airflow, tests) call;
they return a ``RunResult`` whose ``exit_code`` follows dbt: 0 all passed, 1 a node or an error-severity test
failed. An invalid project raises ``ModelError`` (exit code 2) before anything is written.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt.config import Project
from elt.errors import EXIT_FAILED, EXIT_OK, TransformError
from elt.models import ModelProject, load_models
from elt.models.changes import RunChanges, record_changes
from elt.models.selection import selected_models, selected_tests
from elt.transform import checks
from elt.transform.artifacts import RUN_RESULTS_SCHEMA, manifest, metadata, write_json
from elt.transform.audits import batched_outcomes
from elt.transform.context import Outcome, RunContext
from elt.transform.materialize import materialize

log = logging.getLogger(__name__)


@dataclass
class NodeResult:
    """One executed node, as a ``results[]`` entry of run_results.json."""

    unique_id: str
    status: str  # models: success | error | skipped; tests: pass | warn | fail | error | skipped
    started_at: datetime
    completed_at: datetime
    execution_time: float
    message: str = ""
    adapter_response: dict[str, Any] = field(default_factory=dict)
    failures: int | None = None
    relation_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The dbt-shaped dictionary."""
        timing = [{"name": "execute", "started_at": self.started_at.isoformat(),
                   "completed_at": self.completed_at.isoformat()}]  # fmt: skip
        return {
            "unique_id": self.unique_id,
            "status": self.status,
            "timing": timing,
            "thread_id": "Thread-1",
            "execution_time": round(self.execution_time, 4),
            "adapter_response": self.adapter_response,
            "message": self.message,
            "failures": self.failures,
            "relation_name": self.relation_name,
        }


@dataclass
class RunResult:
    """What one ``elt transform`` / ``elt test`` invocation did."""

    command: str
    invocation_id: str
    generated_at: datetime
    elapsed_time: float
    args: dict[str, Any]
    results: list[NodeResult]
    run_results: dict[str, Any] = field(default_factory=dict)
    #: Tests an audit did not run because their relation did not change (``elt run``'s test step).
    not_changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every node succeeded or passed (warnings included)."""
        return not any(r.status in ("error", "fail", "skipped") for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when ``ok``, else 1 (dbt's convention)."""
        return EXIT_OK if self.ok else EXIT_FAILED

    @property
    def error(self) -> str | None:
        """One line naming the nodes that failed, or None."""
        bad = [r for r in self.results if r.status in ("error", "fail", "skipped")]
        if not bad:
            return None
        shown = "; ".join(f"{r.unique_id} {r.status}: {r.message}" for r in bad[:5])
        return shown + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")

    def counts(self) -> dict[str, Any]:
        """Node counts by status (and documents written, for transforms), for run logs and summaries."""
        counts: dict[str, Any] = {"nodes": len(self.results)}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        if self.command == "transform":
            counts["documents_written"] = sum(
                r.adapter_response.get("rows_affected", 0) for r in self.results
            )
        if self.command == "test":
            counts["scope"] = self.args.get("scope", "full")
            if self.not_changed:
                counts["not_changed"] = len(self.not_changed)
        return counts

    def result(self, unique_id: str) -> NodeResult:
        """The result of one node (KeyError if it did not run)."""
        return next(r for r in self.results if r.unique_id == unique_id)


def _now() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON keeps milliseconds


def _database(store: Any) -> Database:
    return store if isinstance(store, Database) else store.db


def _ensure_source_indexes(db: Database, mp: ModelProject, model_ids: Sequence[str]) -> None:
    """Indexes the models rely on, declared in sources YAML; only on collections that exist already.

    An index the loader already created on the same keys (e.g. its unique one) is kept as it is.
    """
    sources = {p for uid in model_ids for p in mp.models[uid].depends_on if p in mp.sources}
    existing = set(db.list_collection_names())
    for uid in sorted(sources):
        source = mp.sources[uid]
        if source.collection not in existing:
            continue
        present = {
            tuple(k for k, _ in index["key"].items()) for index in db[source.collection].list_indexes()
        }
        for keys in source.spec.indexes:
            if tuple(keys) not in present:
                db[source.collection].create_index([(k, ASCENDING) for k in keys])


def _finish(mp: ModelProject, command: str, ctx_id: str, started: float, generated_at: datetime,
            args: dict[str, Any], results: list[NodeResult], write_artifacts: bool) -> RunResult:  # fmt: skip
    elapsed = time.monotonic() - started
    run = RunResult(command, ctx_id, generated_at, elapsed, args, results)
    run.run_results = {
        "metadata": metadata(mp, RUN_RESULTS_SCHEMA, ctx_id, _now()),
        "results": [r.to_json() for r in results],
        "elapsed_time": round(elapsed, 4),
        "args": args,
    }
    if write_artifacts:
        target = mp.project.target_dir
        write_json(target / "manifest.json", manifest(mp, ctx_id, generated_at))
        write_json(target / "run_results.json", run.run_results)
    return run


def _models(project: Project, vars: Mapping[str, Any] | None, models: ModelProject | None) -> ModelProject:
    """The given, already loaded models, or the project's models loaded now."""
    if models is None:
        return load_models(project, vars)
    if vars:
        raise ValueError(
            "pass vars or already loaded models, not both (the models were rendered without them)"
        )
    return models


def run_transform(
    project: Project,
    store: Any,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    full_refresh: bool = False,
    vars: Mapping[str, Any] | None = None,
    write_artifacts: bool = True,
    run_id: str | None = None,
    models: ModelProject | None = None,
) -> RunResult:
    """Validate ``aggregations/``, then materialize the selected models in dependency order.

    ``store`` is an ``elt.store.Store`` or a pymongo ``Database``; ``run_id`` (default: a new uuid) becomes
    the invocation id and every written document's ``_run_id``. ``models``: the project's models already
    loaded and validated (``elt run`` loads them once for all its steps; not with ``vars``).
    """
    started = time.monotonic()
    mp = _models(project, vars, models)
    chosen = selected_models(mp, select, exclude)
    db = _database(store)
    ctx = RunContext(run_id=run_id or str(uuid.uuid4()), started_at=_now(), full_refresh=full_refresh)
    args = {"which": "transform", "select": list(select), "exclude": list(exclude), "full_refresh": full_refresh,
            "vars": dict(vars or {})}  # fmt: skip
    _ensure_source_indexes(db, mp, chosen)
    results: list[NodeResult] = []
    failed: set[str] = set()
    for i, uid in enumerate(chosen, 1):
        model = mp.models[uid]
        node_started, clock = _now(), time.monotonic()
        upstream_failure = next((p for p in mp.graph.ancestors(uid) if p in failed), None)
        relation = f"{db.name}.{model.collection}"
        if upstream_failure:
            failed.add(uid)
            results.append(NodeResult(uid, "skipped", node_started, _now(), 0.0,
                                      f"skipped: upstream {upstream_failure} failed", relation_name=relation))  # fmt: skip
            log.warning("%d of %d SKIP %s (upstream %s failed)", i, len(chosen), model.name, upstream_failure)
            continue
        log.info("%d of %d START %s model %s", i, len(chosen), model.spec.materialized, model.name)
        try:
            outcome: Outcome = materialize(db, mp, model, ctx)
            status, message, response = "success", outcome.message, outcome.adapter_response()
        except (TransformError, PyMongoError) as exc:
            failed.add(uid)
            status, message, response = "error", str(exc), {}
        elapsed = time.monotonic() - clock
        results.append(NodeResult(uid, status, node_started, _now(), elapsed, message, response,
                                  relation_name=relation))  # fmt: skip
        log_call = log.info if status == "success" else log.error
        log_call("%d of %d %s %s: %s [%.2fs]", i, len(chosen), "OK" if status == "success" else "ERROR",
                 model.name, message, elapsed)  # fmt: skip
    assert ctx.changes is not None
    record_changes(db, ctx.changes, ctx.started_at)
    return _finish(mp, "transform", ctx.run_id, started, ctx.started_at, args, results, write_artifacts)


def run_tests(
    project: Project,
    store: Any,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    store_failures: bool = False,
    vars: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    write_artifacts: bool = True,
    run_id: str | None = None,
    changes: RunChanges | None = None,
    models: ModelProject | None = None,
) -> RunResult:
    """Validate ``aggregations/`` and run the selected data tests (and source freshness).

    ``store_failures`` keeps failing documents in ``elt_test_failures``; ``now`` is the freshness reference.
    ``changes`` (a run's change records) turns the pass into an audit of what that run wrote: a test runs only
    on the partitions its relation changed in, and not at all on a relation that did not change (freshness
    always runs, from what it cached when its source did not change). None (``elt test``) is the full pass.
    ``models`` as in ``run_transform``.
    """
    started = time.monotonic()
    mp = _models(project, vars, models)
    chosen = selected_tests(mp, select, exclude)
    db = _database(store)
    invocation_id, generated_at = run_id or str(uuid.uuid4()), _now()
    now = now or generated_at
    args = {"which": "test", "select": list(select), "exclude": list(exclude),
            "store_failures": store_failures, "vars": dict(vars or {}),
            "scope": "full" if changes is None else "changed"}  # fmt: skip
    results = []
    unchanged: list[str] = []
    planned: list[tuple[str, Any, list[dict[str, Any]] | None]] = []
    for uid in chosen:
        test = mp.tests[uid]
        scopes = None
        if changes is not None:
            change = changes.get(mp.collection_of(test.attached_to))
            if change is None and test.kind == "freshness":
                scopes = []  # freshness always runs: on its cached newest loads when nothing was loaded
            elif change is None:
                unchanged.append(uid)
                continue
            else:
                scopes = None if change.full else change.scopes
        planned.append((uid, test, scopes))
    batched = batched_outcomes(db, mp, planned)  # single-query tests of a relation: one aggregation per scope
    for i, (uid, test, scopes) in enumerate(planned, 1):
        node_started, clock = _now(), time.monotonic()
        outcome = batched.get(uid) or checks.run_test(db, mp, test, now, scopes)
        if store_failures and outcome.status != "error":
            checks.store_failures(db, test, outcome, invocation_id, generated_at)
        elapsed = time.monotonic() - clock
        response = {"failures_sample": outcome.sample[:10]} if outcome.sample else {}
        results.append(NodeResult(uid, outcome.status, node_started, _now(), elapsed, outcome.message, response,
                                  outcome.failures, f"{db.name}.{mp.collection_of(test.attached_to)}"))  # fmt: skip
        level = logging.INFO if outcome.status == "pass" else logging.WARNING
        log.log(level, "%d of %d %s %s %s [%.2fs]", i, len(chosen), outcome.status.upper(), test.name,
                outcome.message, elapsed)  # fmt: skip
    if unchanged:
        log.info("%d test(s) not run: their relation did not change in this run", len(unchanged))
    if changes is None and not select and not exclude:
        record_full_pass(db, generated_at)
    run = _finish(mp, "test", invocation_id, started, generated_at, args, results, write_artifacts)
    run.not_changed = unchanged
    return run


#: ``elt_state`` document recording the last full test pass (``elt test``, or the daily one of ``elt run``).
FULL_PASS_STATE = "tests:full_pass"


def record_full_pass(db: Database, at: datetime) -> None:
    """Remember when every data test last ran on everything."""
    from elt.transform.intervals import STATE_COLLECTION

    db[STATE_COLLECTION].update_one({"_id": FULL_PASS_STATE}, {"$set": {"at": at}}, upsert=True)


def last_full_pass(db: Database) -> datetime | None:
    """When every data test last ran on everything (None: never recorded)."""
    from elt.transform.intervals import STATE_COLLECTION

    doc = db[STATE_COLLECTION].find_one({"_id": FULL_PASS_STATE})
    return doc.get("at") if doc else None
