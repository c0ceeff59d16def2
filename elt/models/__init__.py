"""Models of ``aggregations/``: file schema, sandboxed rendering, validation, dependency graph and selection."""

from elt.models.project import ModelNode, ModelProject, SourceNode, load_models
from elt.models.tests_spec import TestNode

__all__ = ["ModelNode", "ModelProject", "SourceNode", "TestNode", "load_models"]
