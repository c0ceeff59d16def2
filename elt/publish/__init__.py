"""Serving layer: ``elt publish`` copies the marts to PostgreSQL; ``elt dashboard`` imports the Superset bundle."""

from elt.publish.task import PublishResult, publish_marts

__all__ = ["PublishResult", "publish_marts"]
