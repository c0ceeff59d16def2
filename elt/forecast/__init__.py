"""Two-hour forecasts of CO and PM2.5 per station, backtested against honest baselines.

The data flow: ``series`` (staging rows → hourly grid) → ``features`` (origin-time features, no look-ahead) →
``baselines`` / ``gbm`` (predictors) → ``backtest`` (rolling origin, weekly refit) → ``store`` (trained
artifacts) → ``predict`` (writes ``forecasts``) and ``plot`` (PNG).

numpy, pandas, scikit-learn, skops and matplotlib come from the optional ``forecast`` extra: nothing here imports
them at package import time, so ``elt`` keeps working without the extra and ``elt forecast`` says what to install.
"""

from __future__ import annotations

import importlib.util

from elt.errors import ForecastError

#: Pollutants the forecast covers, in the order reports list them.
POLLUTANTS: tuple[str, ...] = ("co", "pm25")
#: Forecast horizons in hours (direct strategy: one model per horizon).
HORIZONS: tuple[int, ...] = (1, 2)
#: Modules of the ``forecast`` extra.
EXTRA_MODULES: tuple[str, ...] = ("numpy", "pandas", "sklearn", "matplotlib", "skops")


def require_forecast_extra() -> None:
    """Raise ``ForecastError`` naming the install command when a module of the ``forecast`` extra is missing."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ForecastError(
            f"elt forecast needs the optional forecast dependencies (missing: {', '.join(missing)}). "
            'Install them with: pip install "airqino-elt[forecast]"'
        )
