"""The run log: one ``elt_runs`` document per run (steps, timings, counts, status, error), secrets redacted.

Document shape (a public contract, read by ``elt status``, the summary and dashboards)::

    {_id: run_id, status: running|success|failed|aborted, full: bool, trigger, demo, host, pid, version,
     started_at, finished_at, seconds, window: {start, end, mode}, current_step,
     steps: [{name, status: running|ok|failed|skipped|aborted, started_at, finished_at, seconds,
              counts: {...}, reason, error}],
     error}

``full`` is true when the record covers every step (a whole ``elt run``, or all the per-step calls of one
Airflow DAG run sharing a ``--run-id``); only a full successful run anchors the next default window.
A record left ``running`` by a killed process is marked ``aborted`` by the next run that takes the lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import datetime, timezone
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import PyMongoError

from elt import __version__
from elt.logs import redact
from elt.owned import RUNS_COLLECTION
from elt.run import STEP_NAMES
from elt.utc import as_utc

log = logging.getLogger(__name__)

ABORTED_MESSAGE = "the process ended without finishing (killed or crashed); a later run took over"


def _utcnow() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id, e.g. ``run-20240909T101500Z-3fa2c1``."""
    now = now or datetime.now(timezone.utc)
    return f"run-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _clean(value: Any) -> Any:
    """``value`` with every string redacted (errors and reasons may quote URLs or headers)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class RunLog:
    """Writes one run's record; every write is best effort after the first (a log must not fail the run)."""

    def __init__(self, db: Database, run_id: str, trigger: str = "cli", demo: bool = False) -> None:
        self.db = db
        self.run_id = run_id
        self.trigger = trigger
        self.demo = demo
        self.started_at = _utcnow()
        self.steps: list[dict[str, Any]] = []
        #: Whether this run recovered an earlier, killed one (set by ``start``).
        self.after_crash = False

    @property
    def collection(self):  # noqa: ANN201 - pymongo's Collection
        """The ``elt_runs`` collection."""
        return self.db[RUNS_COLLECTION]

    def start(self, window: dict[str, Any], recovered: int = 0) -> None:
        """Create the record (or reopen it, for per-step calls sharing a run id) with status ``running``.

        ``recovered``: earlier runs this one found killed (``mark_abandoned``), kept as ``recovered_runs``;
        ``self.after_crash`` says whether this run (in any of its step calls) recovered one."""
        existing = self.collection.find_one({"_id": self.run_id})
        self.after_crash = bool(recovered or (existing or {}).get("recovered_runs"))
        if existing:
            # an earlier step of the same Airflow DAG run; a retried step replaces its previous attempt later
            self.steps = [s for s in existing.get("steps", []) if s.get("status") != "running"]
            self.started_at = existing.get("started_at", self.started_at)
        self.collection.update_one(
            {"_id": self.run_id},
            {
                "$set": {
                    "status": "running",
                    "window": _clean(window),
                    "steps": self.steps,
                    "current_step": None,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "version": __version__,
                    "trigger": self.trigger,
                    "demo": self.demo,
                    "error": None,
                    "finished_at": None,
                    **({"recovered_runs": recovered} if recovered else {}),
                },
                "$setOnInsert": {"started_at": self.started_at},
            },
            upsert=True,
        )

    def step_started(self, name: str) -> dict[str, Any]:
        """Record that step ``name`` is running (replacing an earlier attempt of the same step)."""
        step = {"name": name, "status": "running", "started_at": _utcnow(), "finished_at": None,
                "seconds": None, "counts": {}, "reason": None, "error": None}  # fmt: skip
        self.steps = [s for s in self.steps if s["name"] != name] + [step]
        self._write({"steps": self.steps, "current_step": name})
        return step

    def step_finished(
        self,
        step: dict[str, Any],
        status: str,
        counts: dict[str, Any] | None = None,
        reason: str | None = None,
        error: str | None = None,
        cpu_s: float | None = None,
    ) -> None:
        """Close a step: ``ok``, ``failed`` or ``skipped`` (with the reason), its counts and its error, and the
        CPU seconds this process spent on it (``cpu_s``, when measured)."""
        finished = _utcnow()
        step.update(status=status, finished_at=finished, counts=_clean(counts or {}), reason=_clean(reason),
                    error=_clean(error), seconds=round((finished - step["started_at"]).total_seconds(), 3))  # fmt: skip
        if cpu_s is not None:
            step["cpu_s"] = round(cpu_s, 3)
        self._write({"steps": self.steps, "current_step": None})

    def step_skipped(self, name: str, reason: str) -> None:
        """Record a step that did not run at all, and why."""
        self.step_finished(self.step_started(name), "skipped", reason=reason)

    def finish(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Close the record with ``success``/``failed`` and return it as stored."""
        finished = _utcnow()
        done = {s["name"] for s in self.steps if s["status"] in ("ok", "skipped", "failed")}
        self._write({
            "status": status,
            "error": _clean(error),
            "finished_at": finished,
            "seconds": round((finished - as_utc(self.started_at)).total_seconds(), 3),
            "full": all(name in done for name in STEP_NAMES),
            "current_step": None,
        })  # fmt: skip
        return self.collection.find_one({"_id": self.run_id}) or {}

    def _write(self, fields: dict[str, Any]) -> None:
        try:
            self.collection.update_one({"_id": self.run_id}, {"$set": fields})
        except PyMongoError as exc:
            log.warning("could not update the run log %s: %s", self.run_id, redact(str(exc))[:300])


def mark_abandoned(db: Database, current_run_id: str) -> int:
    """Mark every other ``running`` record as ``aborted`` (call only while holding the run lease)."""
    now = _utcnow()
    coll = db[RUNS_COLLECTION]
    count = 0
    for doc in coll.find({"status": "running", "_id": {"$ne": current_run_id}}, {"steps": 1}):
        steps = [
            {**s, "status": "aborted", "error": ABORTED_MESSAGE} if s.get("status") == "running" else s
            for s in doc.get("steps", [])
        ]
        result = coll.update_one(
            {"_id": doc["_id"], "status": "running"},
            {"$set": {"status": "aborted", "error": ABORTED_MESSAGE, "finished_at": now, "steps": steps,
                      "current_step": None, "recovered_by": current_run_id}},
        )  # fmt: skip
        count += result.modified_count
    if count:
        log.warning("%d earlier run(s) had been killed or crashed; marked aborted", count)
    return count


def last_successful_run(db: Database) -> dict[str, Any] | None:
    """The latest full, successful run by window end (the anchor of the next default window)."""
    return db[RUNS_COLLECTION].find_one(
        {"status": "success", "full": True, "window.end": {"$ne": None}}, sort=[("window.end", DESCENDING)]
    )


def recent_runs(db: Database, limit: int = 10) -> list[dict[str, Any]]:
    """The last ``limit`` runs, newest first."""
    return list(db[RUNS_COLLECTION].find({}, sort=[("started_at", DESCENDING)], limit=limit))


class ShardRunLog(RunLog):
    """The record of one shard's steps (``elt run --shard i/N``): written under ``shards.<step>-i-of-N`` of the
    run's record, one field per shard and step, so shards running in parallel never overwrite each other."""

    def __init__(self, db: Database, run_id: str, shard_label: str, shard_slug: str, trigger: str = "cli",
                 demo: bool = False) -> None:  # fmt: skip
        super().__init__(db, run_id, trigger=trigger, demo=demo)
        self.shard_label, self.shard_slug = shard_label, shard_slug

    def start(self, window: dict[str, Any], recovered: int = 0) -> None:
        """Create the run's record if no call of the run did yet (status ``running``); never rewrite it (a shard
        never recovers killed runs: ``recovered`` is always 0 here)."""
        self.collection.update_one(
            {"_id": self.run_id},
            {"$setOnInsert": {"status": "running", "window": _clean(window), "steps": [], "current_step": None,
                              "trigger": self.trigger, "demo": self.demo, "version": __version__, "error": None,
                              "finished_at": None, "started_at": self.started_at}},
            upsert=True,
        )  # fmt: skip

    def _write(self, fields: dict[str, Any]) -> None:
        if "steps" in fields:
            entries = {f"shards.{s['name']}-{self.shard_slug}": {**s, "shard": self.shard_label}
                       for s in fields["steps"]}  # fmt: skip
            super()._write(entries)

    def finish(self, status: str, error: str | None = None) -> dict[str, Any]:
        """A failed shard fails the run's record (the later ``--after-shards`` call reopens it); returns the
        record with ``status`` this shard's own outcome."""
        if status == "failed":
            super()._write({"status": "failed", "error": _clean(f"shard {self.shard_label}: {error}"),
                            "finished_at": _utcnow()})  # fmt: skip
        record = self.collection.find_one({"_id": self.run_id}) or {}
        return {**record, "status": status, "error": _clean(error), "shard": self.shard_label}


def shard_entries(db: Database, run_id: str, step: str) -> list[dict[str, Any]]:
    """The shard entries of ``step`` recorded in run ``run_id`` (``elt run --shard``), in shard order."""
    doc = db[RUNS_COLLECTION].find_one({"_id": run_id}, {"shards": 1}) or {}
    entries = [e for e in (doc.get("shards") or {}).values() if e.get("name") == step]
    return sorted(entries, key=lambda e: str(e.get("shard")))
