"""Named pause points for crash tests (inactive unless ``ELT_FAILPOINT`` is set).

``ELT_FAILPOINT=<point>`` and ``ELT_FAILPOINT_DIR=<dir>``: when the process reaches ``<point>`` (for example
``stg_airqino_hourly:full:merged``) it creates ``<dir>/<point>.paused`` and waits until that file is removed
(at most ``ELT_FAILPOINT_TIMEOUT_S``, default 120 s), so a test can kill the database server at exactly that
moment. Points are listed in ``docs/models.md`` (crash safety). The variables are read once per process
(declared in ``elt.settings``); unset, a point costs one comparison.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from elt.settings import EltSettings, settings


def failpoint(point: str) -> None:
    """Pause here while a crash test holds this point (no-op in normal runs)."""
    config = _settings()
    if config.failpoint != point:
        return
    marker = pause_marker(config.failpoint_dir, point)
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + config.failpoint_timeout_s
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def pause_marker(directory: Path, point: str) -> Path:
    """The file that says a process is held at ``point`` (in ``ELT_FAILPOINT_DIR``): removing it lets it go on."""
    return directory / f"{point.replace('/', '_')}.paused"


@functools.cache
def _settings() -> EltSettings:
    """The crash-test variables, read once per process (a crash test sets them when it starts the process)."""
    return settings()
