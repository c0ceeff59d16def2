"""The one list of collections airqino-elt itself owns, and which command writes each; the one definition of
every collection name the Python code uses.

No model may be named like one of them, and no ``$merge``/``$out`` may target one (``elt.models.safety``):
a model YAML must never be able to overwrite landed data, the run log, the run lease or the forecast store.
A collection added to the project is added here; ``tests/models/test_reserved_names.py`` fails when a module
declares a ``*_COLLECTION`` constant that is missing from this list, or writes a collection name as a literal.
"""

from __future__ import annotations

#: The collections airqino-elt writes itself (modules import these names; none is written anywhere else).
RAW_HOURLY_COLLECTION = "raw_airqino_hourly"
RAW_HISTORY_COLLECTION = "raw_airqino_history"
RAW_REJECTS_COLLECTION = "raw_airqino_rejects"
#: One document per station: ``days`` maps each UTC day (``YYYY-MM-DD``) to the digest of its stored rows.
RAW_DIGESTS_COLLECTION = "raw_airqino_digests"
LOAD_BATCHES_COLLECTION = "load_batches"
STATE_COLLECTION = "elt_state"
#: Where ``--store-failures`` writes failing documents.
FAILURES_COLLECTION = "elt_test_failures"
RUNS_COLLECTION = "elt_runs"
LOCKS_COLLECTION = "elt_locks"
ALERTS_COLLECTION = "elt_alerts"
#: One document per run id: what the run changed (``elt.models.changes``).
CHANGES_COLLECTION = "elt_run_changes"
FORECAST_MODELS_COLLECTION = "forecast_models"
FORECASTS_COLLECTION = "forecasts"
FORECAST_HEALTH_COLLECTION = "forecast_health"

#: Collection -> the command that writes it (used in messages: "written by <command>").
OWNED_COLLECTIONS: dict[str, str] = {
    RAW_HOURLY_COLLECTION: "elt load",
    RAW_HISTORY_COLLECTION: "elt load",
    RAW_REJECTS_COLLECTION: "elt load",
    LOAD_BATCHES_COLLECTION: "elt load",
    STATE_COLLECTION: "elt transform",
    FAILURES_COLLECTION: "elt test --store-failures",
    RUNS_COLLECTION: "elt run",
    LOCKS_COLLECTION: "elt run",
    ALERTS_COLLECTION: "elt run",
    FORECAST_MODELS_COLLECTION: "elt forecast train",
    FORECASTS_COLLECTION: "elt forecast predict",
    FORECAST_HEALTH_COLLECTION: "elt run (forecast step)",
    CHANGES_COLLECTION: "elt transform and elt run",
    RAW_DIGESTS_COLLECTION: "elt load",
}

# Models of ``aggregations/`` that Python reads by name (the YAML file is the model's definition; a renamed
# model is renamed here too).
#: The staging model: the forecast, the status and the summary read its rows.
STAGING_MODEL = "stg_airqino_hourly"
#: The daily mart: the run summary and the demo read it.
DAILY_MODEL = "daily_sensor_averages"
#: Newest hour per station and pollutant: ``elt status`` reads it.
FRESHNESS_MODEL = "station_freshness"

#: Name prefixes reserved for landed data, the project's own bookkeeping and the server.
RESERVED_PREFIXES: tuple[str, ...] = ("raw_", "elt_", "__elt", "system")


def reserved_reason(name: str) -> str | None:
    """Why ``name`` may not be written by a model (None when it may)."""
    if name in OWNED_COLLECTIONS:
        return f"'{name}' is owned by airqino-elt (written by {OWNED_COLLECTIONS[name]})"
    prefix = next((p for p in RESERVED_PREFIXES if name.startswith(p)), None)
    if prefix is not None:
        return f"'{name}' starts with '{prefix}', reserved for airqino-elt's own collections"
    return None


def writer_of(name: str, default: str = "elt load") -> str:
    """The command that writes an owned collection (``default`` for a source collection not listed)."""
    return OWNED_COLLECTIONS.get(name, default)
