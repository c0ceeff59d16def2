"""The run lease: at most one ``elt run`` works on a database at a time, and a crashed run never blocks forever.

One document per lease in ``elt_locks`` (``_id`` = the lease name). Acquiring is atomic on every MongoDB:

1. ``insert_one`` with the lease's ``_id`` succeeds only if nobody holds it (the unique ``_id`` decides);
2. else a conditional ``find_one_and_update`` takes it over only if it has expired (``expires_at < now``) or its
   holder is provably dead (same host and boot, process gone): a ``kill -9`` on this machine is recovered at
   once, a vanished host after ``ttl``.

While held, a daemon thread renews ``expires_at`` every ``ttl / 3`` (heartbeat); renewal is conditional on the
owner token, so a lease that was taken over is noticed (``lost``) and the run stops at the next step boundary.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from elt.errors import RunLockedError, StoreError
from elt.owned import LOCKS_COLLECTION
from elt.store import pid_alive
from elt.utc import as_utc

log = logging.getLogger(__name__)

#: The lease ``elt run`` takes (one per database).
RUN_LEASE = "elt_run"
#: Default lease time-to-live; the heartbeat renews it every third of that.
DEFAULT_TTL_S = 300.0
#: Tokens of the leases this process holds right now (a lease with our pid and another token is a dead one's).
_HELD_TOKENS: set[str] = set()


def _utcnow() -> datetime:
    # BSON dates keep milliseconds: truncate so what we compare equals what we stored
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: a random token plus where the holder runs (for humans and dead-holder detection)."""

    token: str
    host: str
    pid: int
    boot_id: str

    @classmethod
    def this_process(cls) -> LeaseOwner:
        """An owner identity for the current process (a fresh token every time)."""
        return cls(secrets.token_hex(8), socket.gethostname(), os.getpid(), _boot_id())

    def as_doc(self) -> dict[str, Any]:
        """The owner as stored in ``elt_locks``."""
        return {"token": self.token, "host": self.host, "pid": self.pid, "boot_id": self.boot_id}


def holder_is_dead(doc: dict[str, Any], me: LeaseOwner) -> bool:
    """True when the lease's holder ran on this host since the same boot and its process is gone.

    A holder with our own pid is dead unless its token is one this process holds (pid reuse by ourselves after
    a crash). Anything else (another host, another boot, a live pid) is not provably dead: it has to expire.
    """
    owner = doc.get("owner") or {}
    if owner.get("host") != me.host or not me.boot_id or owner.get("boot_id") != me.boot_id:
        return False
    pid = int(owner.get("pid") or 0)
    if pid == me.pid:
        return owner.get("token") not in _HELD_TOKENS
    return pid > 0 and not pid_alive(pid)


@dataclass
class Lease:
    """A lease on ``name`` in ``db.elt_locks``; use as a context manager or call ``acquire``/``release``."""

    db: Database
    name: str = RUN_LEASE
    ttl_s: float = DEFAULT_TTL_S
    run_id: str | None = None
    owner: LeaseOwner = field(default_factory=LeaseOwner.this_process)
    lost: threading.Event = field(default_factory=threading.Event, init=False)
    taken_over: dict[str, Any] | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    @property
    def collection(self):  # noqa: ANN201 - pymongo's Collection
        """The ``elt_locks`` collection."""
        return self.db[LOCKS_COLLECTION]

    def acquire(self) -> Lease:
        """Take the lease or raise ``RunLockedError`` naming the holder; starts the heartbeat."""
        now = _utcnow()
        doc = {
            "_id": self.name,
            "owner": self.owner.as_doc(),
            "run_id": self.run_id,
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + timedelta(seconds=self.ttl_s),
        }
        # registered before trying, so a concurrent acquire in this process never judges us dead
        _HELD_TOKENS.add(self.owner.token)
        try:
            try:
                self.collection.insert_one(doc)
            except DuplicateKeyError:
                self._take_over(doc, now)
        except PyMongoError as exc:
            _HELD_TOKENS.discard(self.owner.token)
            raise StoreError(f"cannot take the run lease in {LOCKS_COLLECTION}: {exc}") from None
        except RunLockedError:
            _HELD_TOKENS.discard(self.owner.token)
            raise
        self._start_heartbeat()
        return self

    def _take_over(self, doc: dict[str, Any], now: datetime) -> None:
        current = self.collection.find_one({"_id": self.name})
        if current is None:  # released between our insert and our read: one more atomic insert decides
            try:
                self.collection.insert_one(doc)
                return
            except DuplicateKeyError:
                raise RunLockedError(
                    describe_holder(self.collection.find_one({"_id": self.name}) or doc, now)
                ) from None
        expired = current.get("expires_at") is not None and as_utc(current["expires_at"]) < now
        if not expired and not holder_is_dead(current, self.owner):
            raise RunLockedError(describe_holder(current, now))
        # Conditional on the exact holder we judged: two contenders can never both take it over.
        previous = self.collection.find_one_and_update(
            {"_id": self.name, "owner.token": (current.get("owner") or {}).get("token")},
            {"$set": {k: v for k, v in doc.items() if k != "_id"}},
            return_document=ReturnDocument.BEFORE,
        )
        if previous is None:
            latest = self.collection.find_one({"_id": self.name}) or current
            raise RunLockedError(describe_holder(latest, now))
        self.taken_over = previous
        reason = "expired" if expired else "its process is gone"
        log.warning(
            "took over the run lease of run %s on %s (pid %s): %s",
            previous.get("run_id"), (previous.get("owner") or {}).get("host"),
            (previous.get("owner") or {}).get("pid"), reason,
        )  # fmt: skip

    def renew(self) -> bool:
        """Push ``expires_at`` forward; False (and ``lost`` set) if someone else holds the lease now."""
        now = _utcnow()
        try:
            result = self.collection.update_one(
                {"_id": self.name, "owner.token": self.owner.token},
                {"$set": {"heartbeat_at": now, "expires_at": now + timedelta(seconds=self.ttl_s)}},
            )
        except PyMongoError as exc:  # a blip: the lease still has up to two thirds of its ttl left
            log.warning("run lease heartbeat failed (will retry): %s", exc)
            return True
        if result.matched_count == 0:
            self.lost.set()
            log.error(
                "the run lease %s was taken over by another run; this run stops at the next step", self.name
            )
            return False
        return True

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if not self.renew():
                return

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if we still hold it."""
        self._stop.set()
        _HELD_TOKENS.discard(self.owner.token)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.collection.delete_one({"_id": self.name, "owner.token": self.owner.token})
        except PyMongoError as exc:  # it expires by itself after ttl
            log.warning("could not release the run lease (it expires in %.0f s): %s", self.ttl_s, exc)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def describe_holder(doc: dict[str, Any], now: datetime | None = None) -> str:
    """The documented busy message: who holds the lease, since when, until when, and what to do."""
    now = now or _utcnow()
    owner = doc.get("owner") or {}
    expires = as_utc(doc["expires_at"]) if doc.get("expires_at") else now
    since = as_utc(doc["acquired_at"]) if doc.get("acquired_at") else now
    return (
        f"another elt run is in progress (run {doc.get('run_id') or '?'} on {owner.get('host', '?')}, "
        f"pid {owner.get('pid', '?')}, since {since:%Y-%m-%d %H:%M:%S} UTC); its lease expires in "
        f"{max(0, int((expires - now).total_seconds()))} s unless renewed. Nothing was done: retry later "
        "(exit code 3). A crashed run's lease is taken over automatically."
    )


def read_lease(db: Database, name: str = RUN_LEASE) -> dict[str, Any] | None:
    """The current lease document (for ``elt status``), or None when free."""
    return db[LOCKS_COLLECTION].find_one({"_id": name})
