"""``input_window``: a table rebuilt from the recent past of its input only (docs/models.md).

A table such as ``station_headline`` depends only on its input's last days (yesterday, the 30 days before it),
counted back from the input's newest value (data time). Its pipeline finds that newest value itself, so it
gives the same result from any input that holds every document of that span. A rebuild after a recorded one
therefore reads only the input from the newest value among the documents changed since then, back ``days``:
that value is at most the newest one, so the span it starts is never shorter than the one the pipeline needs.
The changed documents are read through the input's change-field index, the span through an index on ``field``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from pymongo.database import Database

from elt.models.project import ModelNode, ModelProject
from elt.transform.intervals import newer_than

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")


def days_before(value: Any, days: int) -> datetime | str | None:
    """``value`` moved back ``days`` days, in its own kind: a datetime, or a ``YYYY-MM-DD`` day (None when it is
    neither: the caller then reads the whole input)."""
    if isinstance(value, datetime):
        return value - timedelta(days=days)
    if isinstance(value, str) and _ISO_DAY.match(value):
        try:
            return (date.fromisoformat(value[:10]) - timedelta(days=days)).isoformat()
        except ValueError:
            return None
    return None


def input_window_match(
    db: Database, mp: ModelProject, model: ModelNode, change_field: str | None, changed_after: Any
) -> dict[str, Any] | None:
    """The ``$match`` that limits a table's rebuild to its ``input_window``, or None to read the whole input
    (no window declared, no earlier build recorded, no changed input document carrying the field)."""
    window = model.spec.input_window
    if window is None or change_field is None or changed_after is None:
        return None
    rows = list(db[mp.collection_of(model.from_id)].aggregate([
        {"$match": {change_field: newer_than(changed_after)}},
        {"$group": {"_id": None, "newest": {"$max": f"${window.field}"}}},
    ]))  # fmt: skip
    start = days_before(rows[0]["newest"], window.days) if rows else None
    return None if start is None else {window.field: {"$gte": start}}


def window_text(match: dict[str, Any]) -> str:
    """``day >= 2024-08-09`` for the run's results."""
    field, bounds = next(iter(match.items()))
    return f"{field} >= {bounds['$gte']}"
