"""Landing raw AirQino data in MongoDB: ``task`` runs a load (stations in parallel, audit per station),
``prefilter`` finds the rows of a response that are already stored, ``landing`` writes the rest (only
new/changed rows, history, rejects)."""

from elt.load.landing import LandingCounts, ensure_load_indexes, land_response
from elt.load.prefilter import raw_id
from elt.load.task import LoadResult, LoadTask, StationLoadResult

__all__ = [
    "LandingCounts",
    "LoadResult",
    "LoadTask",
    "StationLoadResult",
    "ensure_load_indexes",
    "land_response",
    "raw_id",
]
