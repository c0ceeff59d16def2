"""One exception type per package area, each carrying the CLI exit code it maps to.

Exit codes follow dbt: 0 ok, 1 a step (node, station, test) failed, 2 usage error, invalid project or
unexpected error. The CLI prints an ``EltError`` as one clear message, never as a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: Another ``elt run`` holds the run lease (documented in README).
EXIT_BUSY = 3


class EltError(Exception):
    """Base of every expected error; ``exit_code`` is what the CLI returns."""

    exit_code: int = EXIT_FAILED


class ConfigError(EltError):
    """The project configuration or profile is invalid or missing."""

    exit_code = EXIT_USAGE


class StoreError(EltError):
    """MongoDB cannot be reached or the embedded server cannot start."""

    exit_code = EXIT_FAILED


class StoreBusyError(StoreError):
    """The embedded store is being started or used by another process in an incompatible way."""

    exit_code = EXIT_BUSY


class SourceError(EltError):
    """The AirQino API failed (after retries), refused auth, or returned something unusable."""


class LoadError(EltError):
    """Landing raw data failed."""


class ModelError(EltError):
    """A model, source or selector in ``aggregations/`` is invalid."""

    exit_code = EXIT_USAGE


class TransformError(EltError):
    """A model failed while running."""


class ForecastError(EltError):
    """Forecast training, prediction or backtest failed."""


class PublishError(EltError):
    """Copying marts to PostgreSQL failed."""


class RunError(EltError):
    """An ``elt run`` step failed."""


class RunLockedError(RunError):
    """Another ``elt run`` holds the lease."""

    exit_code = EXIT_BUSY
