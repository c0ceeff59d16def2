"""airqino-elt: a dbt-style ELT for AirQino air-quality sensor networks on MongoDB."""

__version__ = "0.1.0"
