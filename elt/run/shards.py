"""Station shards in a run: which steps a shard may run, and that a shard never overlaps a whole run.

What a shard is (``Shard``, ``parse_shard``) and which models it builds: ``elt.models.shards``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.database import Database

from elt.errors import ConfigError
from elt.models.shards import Shard

#: Steps that can run per shard (the others combine stations: they run once, ``--after-shards``).
SHARDABLE_STEPS = ("load", "transform")


def check_shard_steps(steps: Iterable[str], shard: Shard | None, after_shards: bool) -> None:
    """A ConfigError when ``--shard``/``--after-shards`` do not fit the chosen steps."""
    if shard is not None and after_shards:
        raise ConfigError(
            "--shard and --after-shards exclude each other: a call is one shard, or what follows them"
        )
    wrong = [s for s in steps if s not in SHARDABLE_STEPS]
    if shard is not None and (not steps or wrong):
        raise ConfigError(f"--shard {shard.label} applies to the steps {' and '.join(SHARDABLE_STEPS)} only "
                          f"(pass --step load and/or --step transform; {', '.join(wrong) or 'all steps'} "
                          "combine stations: run them once with --after-shards)")  # fmt: skip


def check_main_lease(db: Database, run_id: str) -> None:
    """RunLockedError (exit 3) when another run (not ``run_id``) holds the whole-run lease right now.

    Shards of one run take one lease each (``elt_run:shard-i-of-N``) so they run in parallel; they still never
    interleave with a cron or manual ``elt run`` that holds the whole-run lease.
    """
    from datetime import datetime, timezone

    from elt.errors import RunLockedError
    from elt.run.lock import LOCKS_COLLECTION, RUN_LEASE, describe_holder
    from elt.utc import as_utc

    now = datetime.now(timezone.utc)
    holder = db[LOCKS_COLLECTION].find_one({"_id": RUN_LEASE})
    if not holder or holder.get("run_id") == run_id:
        return
    expires = holder.get("expires_at")
    if expires is not None and as_utc(expires) > now:
        raise RunLockedError(describe_holder(holder, now))
