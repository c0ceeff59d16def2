"""A model's ``runs:`` key: its outputs depend on their neighbours only through runs of equal values.

A QC rule such as "the same value for 24 hours is a frozen sensor" makes an hour's output depend on the hours
around it, so the model declares ``lookback`` and ``lookahead`` as far as a run can reach (161 hours in
staging), and a change recomputes that far on both sides. Yet an unchanged hour can only change through the run
it belongs to, and only when that run is shorter than the rule's length: a run that long is classified the same
whatever a change adds to it or cuts from it. ``runs:`` says so, and an incremental batch then recomputes the
changed hours plus the short runs that touch them (``elt.transform.reach``), reading ``lookback`` and
``lookahead`` around those only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunsSpec(BaseModel):
    """``runs:`` in a model file (incremental with ``event_time``)."""

    model_config = ConfigDict(extra="forbid")

    fields: list[str] = Field(
        min_length=1,
        description="Input fields whose runs of equal numbers the outputs depend on, e.g. [co, pm25].",
    )
    min_run: int | str = Field(
        description="A run of at least this many documents is classified the same whatever a change adds or "
        "cuts, e.g. \"{{ var('stuck_hours') }}\" (the largest such length when the rule has several)."
    )
    max_step: int | str = Field(
        description="The largest event_time distance between consecutive documents of one run (further apart, "
        "the run ends), e.g. 7h. Int hours or '7h', '90m'."
    )
    skip_if: dict[str, Any] = Field(
        default_factory=dict,
        description="Documents whose fields hold these values (same type) belong to no run, e.g. {provisional: true}.",
    )


@dataclass(frozen=True)
class Runs:
    """``RunsSpec`` rendered. A document *carries* a field when it holds a number there (not NaN, not a
    boolean) and does not match ``skip_if``; a run is a longest sequence of documents carrying the field with
    the same number, consecutive ones at most ``max_step_s`` apart in event_time."""

    fields: tuple[str, ...]
    min_run: int
    max_step_s: int
    skip_if: tuple[tuple[str, Any], ...] = ()
