"""The YAML file formats of ``aggregations/``: one model per file, and source declarations.

Every class forbids unknown keys, so a typo (``materialised:``) is an error naming the file and the key instead
of a silently ignored setting. ``elt schema models`` prints the JSON Schema of these files for editors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from elt.models.runs import RunsSpec

#: A duration: an integer number of hours, or text such as ``"23h"``, ``"2d"``, ``"90m"`` (may be templated).
Duration = int | str

_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+)\s*([mhd]?)\s*$")
_DURATION_SECONDS = {"m": 60, "h": 3600, "d": 86400, "": 3600}

#: Names of the data tests a column or model may declare.
TEST_KINDS = ("unique", "not_null", "accepted_values", "accepted_range", "relationships", "completeness")


def duration_seconds(value: Duration) -> int:
    """Seconds of a rendered duration: an int (hours) or ``"<n>m|h|d"``; ValueError when malformed."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 23h or 2d, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value * 3600
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as 23h, 2d or 90m, got {value!r}")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ColumnSpec(_Strict):
    """One documented column of a model or source, with its data tests."""

    name: str = Field(description="Field name in the documents, e.g. 'pm25_mean'.")
    description: str = Field(default="", description="What the column means, with its unit.")
    type: Literal["string", "number", "integer", "boolean", "datetime", "object", "array"] | None = Field(
        default=None, description="Documented type (shown in the manifest; not enforced)."
    )
    tests: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="Data tests on this column: 'not_null', 'unique', or {accepted_values: {values: [...]}}, "
        "{accepted_range: {min_value, max_value}}, {relationships: {to: \"{{ ref('m') }}\", field: f}}; "
        "each may add severity: warn|error and where: {<match filter>}.",
    )


class PublishWindow(_Strict):
    """Publish only the documents whose ``field`` is within ``days`` of the newest value (data time)."""

    field: str = Field(description="Datetime column the window is measured on, e.g. ts.")
    days: int = Field(ge=1, description="Days before the newest value that are published.")


class PublishSpec(_Strict):
    """How ``elt publish`` copies a model (or a source collection) to PostgreSQL (docs/superset.md)."""

    required: bool = Field(
        default=False,
        description="true: `elt publish` fails when the collection is missing (run elt transform).",
    )
    window: PublishWindow | None = Field(default=None, description="Publish a trailing window only.")
    indexes: list[list[str]] = Field(
        default_factory=list, description="PostgreSQL indexes besides the key, e.g. [[day]]."
    )


def publish_problem(
    publish: PublishSpec | None, columns: list[ColumnSpec], unique_key: list[str] | None
) -> str | None:
    """Why a publish block cannot be honoured (None when it can): the key and the window need documented
    columns (the serving table has exactly the documented columns)."""
    if publish is None:
        return None
    names = [c.name for c in columns]
    if not unique_key:
        return "publish needs unique_key (the serving table's primary key)"
    if not names:
        return "publish needs columns: the documented columns are the serving table's columns"
    missing = [k for k in unique_key if k not in names]
    if missing:
        return f"publish: unique_key {missing} is not among the documented columns"
    if publish.window is not None and publish.window.field not in names:
        return f"publish: window field '{publish.window.field}' is not among the documented columns"
    unknown = sorted({c for index in publish.indexes for c in index} - set(names))
    if unknown:
        return f"publish: indexes name {unknown}, not among the documented columns"
    return None


class _Publishable(_Strict):
    """A file that may carry a ``publish:`` block (a model or a source collection)."""

    @model_validator(mode="after")
    def _publishable(self) -> Any:
        spec: Any = self  # the subclasses declare publish, columns and unique_key
        problem = publish_problem(spec.publish, spec.columns, spec.unique_key)
        if problem:
            raise ValueError(problem)
        return self


class InputWindow(_Strict):
    """A table whose result depends only on the recent past of its input, measured in data time."""

    field: str = Field(
        description="Input field the window is measured on: a datetime, or a local day 'YYYY-MM-DD' (text that "
        "sorts as it dates). Give the input an index on it (its model's indexes:)."
    )
    days: int = Field(
        ge=1, description="Days before the input's newest value of field that the pipeline reads."
    )


class ModelSpec(_Publishable):
    """One model file in ``aggregations/``: a MongoDB pipeline over one relation, and how to store its result."""

    name: str = Field(pattern=_NAME_PATTERN, description="Model name = the collection it materializes.")
    description: str = Field(default="", description="What one document of the model is.")
    from_: str = Field(
        alias="from",
        description="The relation the pipeline reads: \"{{ ref('model') }}\" or \"{{ source('src', 'table') }}\".",
    )
    materialized: Literal["view", "table", "incremental"] = Field(
        default="table",
        description="view: a MongoDB view; table: rebuilt in place (merged on unique_key, earlier runs' documents then deleted); "
        "incremental: only changed partitions recomputed and $merge'd on unique_key.",
    )
    unique_key: list[str] | None = Field(
        default=None,
        description="Fields identifying one document; required for incremental (the $merge key).",
    )
    partition_by: list[str] | None = Field(
        default=None,
        description="Incremental: fields present in both input and output such that output documents of one "
        "partition only depend on input documents of the same partition, e.g. [station_id, day].",
    )
    event_time: str | None = Field(
        default=None,
        description="Incremental: datetime field (input and output) along which changes are windowed inside a "
        "partition; without it whole partitions are recomputed.",
    )
    lookback: Duration | None = Field(
        default=None,
        description="Incremental with event_time: an output at t reads input back to t - lookback "
        "(so a changed input at c recomputes outputs up to c + lookback). Int hours or '23h', '2d'.",
    )
    lookahead: Duration | None = Field(
        default=None,
        description="Incremental with event_time: an output at t reads input up to t + lookahead "
        "(window functions looking forward). Int hours or '23h', '2d'.",
    )
    runs: RunsSpec | None = Field(
        default=None,
        description="Incremental with event_time, lookback and lookahead: the outputs depend on their neighbours "
        "only through runs of equal values (elt/models/runs.py), so a change recomputes the short runs it touches.",
    )
    retain: Duration | None = Field(
        default=None,
        description="Incremental with event_time: keep only the outputs whose event_time is within this long "
        "of the input's newest event_time (data time, not the clock). Every run deletes the older ones and a "
        "full build reads only that span, e.g. 8d for a chart of the last 48 hours. Default: keep everything.",
    )
    input_window: InputWindow | None = Field(
        default=None,
        description="Table: the pipeline's result depends only on the input documents whose field is within "
        "days of the input's newest value (e.g. yesterday and the 30 days before). A rebuild after a first "
        "build then reads only the input from the newest value among its changed documents back that many "
        "days, not the whole history. The pipeline must itself find the newest value and ignore what is older.",
    )
    indexes: list[list[str]] = Field(
        default_factory=list,
        description="Extra ascending indexes to create on the output, e.g. [[station_id, ts]].",
    )
    tags: list[str] = Field(default_factory=list, description="Labels for selection (--select tag:daily).")
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Variables for this model; override config vars, overridden by --vars.",
    )
    columns: list[ColumnSpec] = Field(default_factory=list, description="Documented columns and their tests.")
    tests: list[str | dict[str, Any]] = Field(
        default_factory=list,
        description="Model-level tests, e.g. {unique: {columns: [station_id, day]}} or {completeness: {...}}.",
    )
    publish: PublishSpec | None = Field(
        default=None,
        description="Copy this model to PostgreSQL with `elt publish` (columns and unique_key make the table).",
    )
    pipeline: list[dict[str, Any]] = Field(
        description="MongoDB aggregation stages in YAML; strings may use {{ ref() }}, {{ source() }}, "
        "{{ var() }}, {{ start }}, {{ end }}, {{ stations }}, {{ station_attr('timezone') }}."
    )

    @field_validator("unique_key", "partition_by", mode="before")
    @classmethod
    def _one_field_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _materialization_keys(self) -> ModelSpec:
        incremental_only = {"partition_by": self.partition_by, "event_time": self.event_time,
                            "lookback": self.lookback, "lookahead": self.lookahead, "retain": self.retain,
                            "runs": self.runs}  # fmt: skip
        if self.input_window is not None and self.materialized != "table":
            raise ValueError(
                f"input_window only applies to materialized: table (this model is {self.materialized})"
            )
        if self.materialized != "incremental":
            used = [key for key, value in incremental_only.items() if value is not None]
            if used:
                raise ValueError(
                    f"{', '.join(used)} only apply to materialized: incremental (this model is {self.materialized})"
                )
            if self.materialized == "view" and (self.unique_key or self.indexes):
                raise ValueError(
                    "a view has no unique_key or indexes; use materialized: table or incremental"
                )
            return self
        if not self.unique_key:
            raise ValueError("materialized: incremental needs unique_key (the fields $merge matches on)")
        if not self.partition_by:
            raise ValueError(
                "materialized: incremental needs partition_by (fields of input and output that bound what a "
                "change can affect, e.g. [station_id, day])"
            )
        if self.event_time is None and (self.lookback is not None or self.lookahead is not None):
            raise ValueError("lookback/lookahead need event_time (the datetime field they are measured on)")
        if self.runs is not None and (
            self.event_time is None or self.lookback is None or self.lookahead is None
        ):
            raise ValueError("runs needs event_time, lookback and lookahead (the furthest a run reaches)")
        if self.event_time is None and self.retain is not None:
            raise ValueError("retain needs event_time (the datetime field the kept span is measured on)")
        return self


class FreshnessThreshold(_Strict):
    """An age limit, dbt style: ``{count: 6, period: hour}``."""

    count: int = Field(ge=1, description="How many periods.")
    period: Literal["minute", "hour", "day"] = Field(description="Unit of count.")

    def seconds(self) -> int:
        """The limit in seconds."""
        return self.count * {"minute": 60, "hour": 3600, "day": 86400}[self.period]


class FreshnessSpec(_Strict):
    """Source freshness: the newest ``loaded_at_field`` (per group) must be younger than the thresholds."""

    warn_after: FreshnessThreshold | None = Field(default=None, description="Older than this: warn.")
    error_after: FreshnessThreshold | None = Field(default=None, description="Older than this: error.")
    group_by: str | None = Field(default=None, description="Check each group separately, e.g. station_id.")
    filter: dict[str, Any] | None = Field(default=None, description="A $match filter applied first.")


class SourceTableSpec(_Publishable):
    """One collection of a source, written by ``elt load`` (never by a model)."""

    name: str = Field(pattern=_NAME_PATTERN, description="Name used in {{ source('<source>', '<name>') }}.")
    collection: str | None = Field(default=None, description="MongoDB collection; defaults to the name.")
    description: str = Field(default="", description="What one document is.")
    loaded_at_field: str | None = Field(
        default=None,
        description="Datetime set when a document's current version was written (change tracking).",
    )
    event_time: str | None = Field(default=None, description="Datetime the measurement refers to, e.g. ts.")
    freshness: FreshnessSpec | None = Field(default=None, description="Source freshness rule (elt test).")
    indexes: list[list[str]] = Field(
        default_factory=list,
        description="Indexes the models need on this collection (ensured by elt transform).",
    )
    columns: list[ColumnSpec] = Field(default_factory=list, description="Documented columns and their tests.")
    tests: list[str | dict[str, Any]] = Field(default_factory=list, description="Collection-level tests.")
    unique_key: list[str] | None = Field(
        default=None, description="Fields identifying one document (the serving table's key when published)."
    )
    publish: PublishSpec | None = Field(
        default=None, description="Copy this collection to PostgreSQL with `elt publish`."
    )


class SourceSpec(_Strict):
    """A group of source collections, e.g. ``airqino``."""

    name: str = Field(pattern=_NAME_PATTERN, description="First argument of {{ source() }}.")
    description: str = Field(default="", description="Where the data comes from.")
    tables: list[SourceTableSpec] = Field(min_length=1, description="The collections of this source.")


class SourcesFile(_Strict):
    """A YAML file with a top-level ``sources:`` list."""

    sources: list[SourceSpec] = Field(description="Declared sources.")


class TestArgs(_Strict):
    """Options every data test accepts."""

    severity: Literal["warn", "error"] = Field(default="error", description="warn: reported, exit code 0.")
    where: dict[str, Any] | None = Field(default=None, description="$match filter applied before testing.")
    name: str | None = Field(default=None, description="Custom test name (default: kind + model + column).")


class UniqueArgs(TestArgs):
    """No two documents share the value(s) of ``columns`` (or the column the test is declared on)."""

    columns: list[str] | None = Field(default=None, description="Fields forming the key (model-level test).")


class NotNullArgs(TestArgs):
    """Every document has a non-null value."""

    column: str | None = Field(default=None, description="Field (implicit on a column test).")


class AcceptedValuesArgs(TestArgs):
    """Non-null values are one of ``values``."""

    column: str | None = Field(default=None, description="Field (implicit on a column test).")
    values: list[Any] = Field(description="Allowed values.")


class AcceptedRangeArgs(TestArgs):
    """Non-null values lie within ``[min_value, max_value]``."""

    column: str | None = Field(default=None, description="Field (implicit on a column test).")
    min_value: float | None = Field(default=None, description="Lower bound.")
    max_value: float | None = Field(default=None, description="Upper bound.")
    inclusive: bool = Field(default=True, description="Bounds themselves allowed.")


class RelationshipsArgs(TestArgs):
    """Every non-null value exists as ``field`` in the relation ``to``."""

    column: str | None = Field(default=None, description="Field (implicit on a column test).")
    to: str = Field(description="\"{{ ref('model') }}\" or \"{{ source('src', 'table') }}\".")
    field: str = Field(description="Field of the other relation.")


class CompletenessArgs(TestArgs):
    """Each group has at least ``min_ratio`` of its expected rows.

    With ``event_time``: expected = every ``interval`` between the group's first and last event (or over the
    trailing ``recent`` period); counted = rows matching ``counted_if``. Without: expected = the group's rows.
    """

    group_by: list[str] = Field(
        default_factory=list, description="Groups checked separately, e.g. [station_id]."
    )
    event_time: str | None = Field(default=None, description="Datetime field of the time series.")
    interval: Literal["hour", "day"] = Field(default="hour", description="Expected spacing of rows.")
    recent: Duration | None = Field(
        default=None, description="Only the trailing period of each group, e.g. 7d."
    )
    counted_if: dict[str, Any] | None = Field(default=None, description="$match filter: rows that count.")
    min_ratio: float = Field(ge=0, le=1, description="Smallest acceptable counted/expected ratio.")


#: Arguments model of each test kind.
TEST_ARGS: dict[str, type[TestArgs]] = {
    "unique": UniqueArgs,
    "not_null": NotNullArgs,
    "accepted_values": AcceptedValuesArgs,
    "accepted_range": AcceptedRangeArgs,
    "relationships": RelationshipsArgs,
    "completeness": CompletenessArgs,
}


def models_json_schema() -> dict[str, Any]:
    """JSON Schema of a file in ``aggregations/``: either one model or a ``sources:`` file."""
    model_schema = ModelSpec.model_json_schema(by_alias=True)
    sources_schema = SourcesFile.model_json_schema()
    defs = {**model_schema.pop("$defs", {}), **sources_schema.pop("$defs", {})}
    defs["ModelSpec"], defs["SourcesFile"] = model_schema, sources_schema
    for kind, args in TEST_ARGS.items():
        defs[f"{kind}_test"] = args.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "airqino-elt aggregations file",
        "description": "A model (one per file) or a sources declaration, in aggregations/.",
        "oneOf": [{"$ref": "#/$defs/ModelSpec"}, {"$ref": "#/$defs/SourcesFile"}],
        "$defs": defs,
    }
