"""The run lease in ``elt_locks``: atomic acquire, busy message, expiry, dead-holder takeover, heartbeat."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from pymongo.database import Database

from elt.errors import EXIT_BUSY, RunLockedError
from elt.run.lock import LOCKS_COLLECTION, RUN_LEASE, Lease, LeaseOwner, read_lease


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_acquire_is_refused_with_exit_code_3_and_the_holder_named(mongo_db: Database) -> None:
    with Lease(mongo_db, run_id="run-a"):
        with pytest.raises(RunLockedError) as caught:
            Lease(mongo_db, run_id="run-b").acquire()
        assert caught.value.exit_code == EXIT_BUSY == 3
        message = str(caught.value)
        assert "another elt run is in progress (run run-a" in message
        assert "exit code 3" in message
    assert read_lease(mongo_db) is None


def test_release_frees_the_lease_for_the_next_run(mongo_db: Database) -> None:
    Lease(mongo_db, run_id="first").acquire().release()
    with Lease(mongo_db, run_id="second") as lease:
        assert read_lease(mongo_db)["run_id"] == "second"
        assert read_lease(mongo_db)["owner"]["token"] == lease.owner.token


def test_expired_lease_of_another_host_is_taken_over(mongo_db: Database) -> None:
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    mongo_db[LOCKS_COLLECTION].insert_one({
        "_id": RUN_LEASE, "run_id": "ghost", "acquired_at": past - timedelta(hours=1), "expires_at": past,
        "owner": {"token": "t0", "host": "elsewhere", "pid": 1, "boot_id": "x"},
    })  # fmt: skip
    with Lease(mongo_db, run_id="new") as lease:
        assert lease.taken_over is not None and lease.taken_over["run_id"] == "ghost"
        assert read_lease(mongo_db)["run_id"] == "new"


def test_live_lease_of_another_host_blocks_until_it_expires(mongo_db: Database) -> None:
    future = datetime.now(timezone.utc) + timedelta(minutes=5)
    mongo_db[LOCKS_COLLECTION].insert_one({
        "_id": RUN_LEASE, "run_id": "remote", "acquired_at": datetime.now(timezone.utc), "expires_at": future,
        "owner": {"token": "t0", "host": "elsewhere", "pid": 1, "boot_id": "x"},
    })  # fmt: skip
    with pytest.raises(RunLockedError, match=r"run remote on elsewhere, pid 1"):
        Lease(mongo_db).acquire()


def test_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(mongo_db: Database) -> None:
    me = LeaseOwner.this_process()
    if not me.boot_id:
        pytest.skip("no /proc boot id: dead-holder detection is off, only expiry applies")
    future = datetime.now(timezone.utc) + timedelta(minutes=5)
    mongo_db[LOCKS_COLLECTION].insert_one({
        "_id": RUN_LEASE, "run_id": "killed", "acquired_at": datetime.now(timezone.utc), "expires_at": future,
        "owner": {"token": "t0", "host": me.host, "pid": _dead_pid(), "boot_id": me.boot_id},
    })  # fmt: skip
    with Lease(mongo_db, run_id="recovering") as lease:
        assert lease.taken_over["run_id"] == "killed"


def _contend(mongo_db: Database, run_id: str, barrier: threading.Barrier, winners: list, busy: list) -> None:
    lease = Lease(mongo_db, run_id=run_id)
    barrier.wait()
    try:
        winners.append(lease.acquire())
    except RunLockedError as exc:
        busy.append(str(exc))


def test_simultaneous_acquires_have_exactly_one_winner(mongo_db: Database) -> None:
    for round_ in range(10):
        barrier = threading.Barrier(4)
        winners: list[Lease] = []
        busy: list[str] = []
        threads = [
            threading.Thread(target=_contend, args=(mongo_db, f"r{round_}-{i}", barrier, winners, busy))
            for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1 and len(busy) == 3
        winners[0].release()


def test_heartbeat_pushes_the_expiry_forward(mongo_db: Database) -> None:
    with Lease(mongo_db, ttl_s=3.0):
        first = read_lease(mongo_db)["expires_at"]
        time.sleep(1.6)
        assert read_lease(mongo_db)["expires_at"] > first


def test_a_lease_taken_over_is_noticed_as_lost(mongo_db: Database) -> None:
    lease = Lease(mongo_db, ttl_s=300).acquire()
    try:
        mongo_db[LOCKS_COLLECTION].update_one({"_id": RUN_LEASE}, {"$set": {"owner.token": "someone-else"}})
        assert lease.renew() is False
        assert lease.lost.is_set()
    finally:
        lease.release()
    assert read_lease(mongo_db)["owner"]["token"] == "someone-else"  # release never deletes another's lease
