"""How far a change reaches in a model with ``runs:`` (``elt.models.runs``): its changed spans, widened by the
short runs that touch them.

An unchanged input document can change an output only through a run that a change can lengthen, cut or join,
and such a run holds the last document carrying the field before a changed span (or the first one after it),
no more than ``max_step`` away from the span. Runs further back are bounded by unchanged documents on both
sides. A run with ``min_run`` documents or more among the unchanged ones is classified the same whatever the
change does to it. So, per changed span and field, the output widens to the earliest (latest) document of that
run when it has fewer than ``min_run`` unchanged documents, and not at all otherwise. A walk stops at the
neighbouring changed span, whose own output and walks cover the rest. The result never exceeds ``lookahead``
before a span or ``lookback`` after it, the reach the model declares anyway.

Only the documents that can take part are read: one indexed range per group of nearby spans, a quarter of the
declared reach (plus ``max_step``) either side, and the whole reach when a walk runs off that.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from elt.models.runs import Runs

Span = tuple[datetime, datetime]


class _UnknownValue(Exception):
    """A field holds a value whose run membership is not certain here (e.g. Decimal128): no narrowing."""


class _ReadMore(Exception):
    """A walk ran off the documents read: read the whole reach."""


def reached_spans(db: Database, collection: str, partition: dict[str, Any], event_time: str, spans: list[Span],
                  runs: Runs, lookback: timedelta, lookahead: timedelta) -> list[Span]:  # fmt: skip
    """The output spans to recompute for the changed ``spans`` (``[first, last]`` event times, sorted) of one
    partition of ``collection`` (the model's input): each widened by the short runs that touch it.

    A quarter of the reach is read first (the runs next to a change are mostly short or dense); the whole reach
    only when a walk runs off that read."""
    declared = [(first - lookahead, last + lookback) for first, last in spans]
    step = timedelta(seconds=runs.max_step_s)
    whole = max(lookback, lookahead) + step
    for margin in (min(whole, max(lookback, lookahead) / 4 + step), whole):
        try:
            reads = _carriers(db, collection, partition, event_time, spans, runs, margin)
            return [_widened(spans, i, next(c for lo, hi, c in reads if lo <= first <= hi), step, runs.min_run,
                             declared[i], margin == whole) for i, (first, _) in enumerate(spans)]  # fmt: skip
        except _ReadMore:
            continue
        except _UnknownValue:
            break
    return declared


def _widened(spans: list[Span], i: int, carriers: dict[str, tuple[list[datetime], list[float]]],
             step: timedelta, min_run: int, declared: Span, whole: bool) -> Span:  # fmt: skip
    """Span ``i`` widened by every field's short runs next to it, within ``declared``."""
    (first, last), lo, hi = spans[i], *spans[i]
    before = spans[i - 1][1] if i else None
    after = spans[i + 1][0] if i + 1 < len(spans) else None
    for times, values in carriers.values():
        lo = min(lo, _run_end(times, values, first, before, step, min_run, True, whole) or lo)
        hi = max(hi, _run_end(times, values, last, after, step, min_run, False, whole) or hi)
    return max(lo, declared[0]), min(hi, declared[1])


def _run_end(times: list[datetime], values: list[float], edge: datetime, bound: datetime | None,
             step: timedelta, min_run: int, backwards: bool, whole: bool) -> datetime | None:  # fmt: skip
    """The far end of the short run next to ``edge`` (a changed span's first or last time), walking away from the
    span over the unchanged carriers (not reaching ``bound``, the neighbouring span); None when no run there can
    change: no carrier within ``step`` of the edge, or ``min_run`` unchanged members. Running off the carriers
    read raises ``_ReadMore`` unless ``whole`` (the whole reach was read: the input ends there)."""
    direction = -1 if backwards else 1
    index = bisect_left(times, edge) - 1 if backwards else bisect_right(times, edge)

    def unchanged(i: int) -> bool:
        return bound is None or (times[i] > bound if backwards else times[i] < bound)

    if not 0 <= index < len(times) or not unchanged(index) or abs(times[index] - edge) > step:
        return None
    count = 1
    while count < min_run:
        following = index + direction
        if not 0 <= following < len(times):
            if whole:
                break
            raise _ReadMore
        if not unchanged(following) or values[following] != values[index]:
            break
        if abs(times[following] - times[index]) > step:
            break
        index, count = following, count + 1
    return None if count >= min_run else times[index]


def _carriers(db: Database, collection: str, partition: dict[str, Any], event_time: str, spans: list[Span],
              runs: Runs, margin: timedelta) -> list[tuple[datetime, datetime, dict[str, tuple[list, list]]]]:  # fmt: skip
    """The documents within ``margin`` of the spans, one indexed range per group of spans closer than twice the
    margin: per range, its bounds and, per field, the event times and values of the documents carrying it, in
    time order. (A walk stays within its span's range: what lies between two ranges was not read.)"""
    ranges: list[list[datetime]] = []
    for first, last in spans:
        if ranges and first - margin <= ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], last + margin)
        else:
            ranges.append([first - margin, last + margin])
    projection = {name: 1 for name in (event_time, *runs.fields, *(key for key, _ in runs.skip_if))}
    reads = []
    for lo, hi in ranges:
        docs = sorted(db[collection].find({**partition, event_time: {"$gte": lo, "$lte": hi}}, projection),
                      key=lambda doc: doc[event_time])  # fmt: skip
        carriers: dict[str, tuple[list, list]] = {name: ([], []) for name in runs.fields}
        for doc in docs:
            if any(
                type(doc.get(key)) is type(value) and doc.get(key) == value for key, value in runs.skip_if
            ):
                continue
            for name in runs.fields:
                value = doc.get(name)
                if _carries(value):
                    carriers[name][0].append(doc[event_time])
                    carriers[name][1].append(value)
        reads.append((lo, hi, carriers))
    return reads


def _carries(value: Any) -> bool:
    """Whether a field value is a number that joins runs (``$isNumber`` and not NaN); raises ``_UnknownValue``
    for a type whose answer is not certain here."""
    if value is None or isinstance(value, (bool, str)):
        return False
    if isinstance(value, (int, float)):
        return not (isinstance(value, float) and math.isnan(value))
    raise _UnknownValue(type(value).__name__)
