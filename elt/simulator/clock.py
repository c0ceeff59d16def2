"""The simulator's settable clock: frozen at an instant (tests) or running from an instant (CLI, demo)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from elt.utc import as_utc


class SimClock:
    """A thread-safe clock; call it for "now" (aware UTC).

    Frozen (the default) it stays where it is set; running, it ticks in real time from the instant it was set.
    """

    def __init__(self, now: datetime | None = None, running: bool = False) -> None:
        self._running = running
        self._lock = threading.Lock()
        self._anchor = as_utc(now) if now is not None else datetime.now(timezone.utc)
        self._anchor_mono = time.monotonic()

    def __call__(self) -> datetime:
        """The current simulated instant."""
        with self._lock:
            if not self._running:
                return self._anchor
            return self._anchor + timedelta(seconds=time.monotonic() - self._anchor_mono)

    @property
    def running(self) -> bool:
        """Whether the clock ticks in real time."""
        return self._running

    def set_running(self, running: bool) -> None:
        """Start or stop ticking from the current instant."""
        moment = self()
        with self._lock:
            self._anchor, self._anchor_mono, self._running = moment, time.monotonic(), running

    def set(self, now: datetime) -> None:
        """Jump to ``now`` (a naive datetime is UTC)."""
        with self._lock:
            self._anchor, self._anchor_mono = as_utc(now), time.monotonic()

    def advance(self, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
        """Move the clock on and return the new instant."""
        moment = self() + timedelta(hours=hours, minutes=minutes, seconds=seconds)
        self.set(moment)
        return moment
