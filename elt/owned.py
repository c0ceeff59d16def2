"""The one list of collections airqino-elt itself owns, and which command writes each.

No model may be named like one of them, and no ``$merge``/``$out`` may target one (``elt.models.safety``):
a model YAML must never be able to overwrite landed data, the run log, the run lease or the forecast store.
A collection added to the project is added here; ``tests/models/test_reserved_names.py`` fails when a module
declares a ``*_COLLECTION`` constant that is missing from this list.
"""

from __future__ import annotations

#: Collection -> the command that writes it (used in messages: "written by <command>").
OWNED_COLLECTIONS: dict[str, str] = {
    "raw_airqino_hourly": "elt load",
    "raw_airqino_history": "elt load",
    "raw_airqino_rejects": "elt load",
    "load_batches": "elt load",
    "elt_state": "elt transform",
    "elt_test_failures": "elt test --store-failures",
    "elt_runs": "elt run",
    "elt_locks": "elt run",
    "elt_alerts": "elt run",
    "forecast_models": "elt forecast train",
    "forecasts": "elt forecast predict",
    "forecast_health": "elt run (forecast step)",
    "elt_run_changes": "elt transform and elt run",
    "raw_airqino_digests": "elt load",
}

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
