"""What one ``elt transform`` invocation shares between its models, and what materializing one model did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from elt.models.changes import RunChanges

#: At most this many partitions are listed in run_results (the count is always exact).
MAX_LISTED_PARTITIONS = 500


@dataclass
class RunContext:
    """What one invocation shares between nodes."""

    run_id: str
    started_at: datetime
    full_refresh: bool = False
    fully_built: set[str] = field(default_factory=set)
    #: Collections this invocation wrote documents to, each stamped ``_updated_at`` = ``started_at``.
    stamped: set[str] = field(default_factory=set)
    #: (collection, field) -> the newest value of ``field`` in a collection this invocation rebuilt whole
    #: through the client (its model's ``event_time``): a child's ``retain`` needs it without a scan.
    newest_event_times: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: What this invocation wrote, relation by relation (the run's change records; see elt.models.changes).
    changes: RunChanges | None = None

    def __post_init__(self) -> None:
        if self.changes is None:
            self.changes = RunChanges(self.run_id)


@dataclass
class Outcome:
    """What materializing one model did (becomes ``adapter_response`` in run_results.json)."""

    mode: str
    rows_affected: int = 0
    partitions: list[dict[str, Any]] = field(default_factory=list)
    partition_count: int = 0
    batches: int = 0
    message: str = ""

    def adapter_response(self) -> dict[str, Any]:
        """dbt-style adapter response with the counts of this run."""
        response: dict[str, Any] = {
            "_message": self.message,
            "code": self.mode.upper(),
            "mode": self.mode,
            "rows_affected": self.rows_affected,
            "partition_count": self.partition_count,
            "batches": self.batches,
        }
        if self.partitions:
            response["partitions"] = self.partitions[:MAX_LISTED_PARTITIONS]
            response["partitions_truncated"] = len(self.partitions) > MAX_LISTED_PARTITIONS
        return response
