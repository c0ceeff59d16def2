"""Named pause points for crash tests (inactive unless ``ELT_FAILPOINT`` is set).

``ELT_FAILPOINT=<point>`` and ``ELT_FAILPOINT_DIR=<dir>``: when the process reaches ``<point>`` (for example
``stg_airqino_hourly:full:merged``) it creates ``<dir>/<point>.paused`` and waits until that file is removed
(at most ``ELT_FAILPOINT_TIMEOUT_S``, default 120 s), so a test can kill the database server at exactly that
moment. Points are listed in ``docs/models.md`` (crash safety). Unset, a point costs one environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def failpoint(point: str) -> None:
    """Pause here while a crash test holds this point (no-op in normal runs)."""
    if os.environ.get("ELT_FAILPOINT") != point:
        return
    directory = Path(os.environ.get("ELT_FAILPOINT_DIR", "."))
    marker = directory / f"{point.replace('/', '_')}.paused"
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + float(os.environ.get("ELT_FAILPOINT_TIMEOUT_S", "120"))
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
