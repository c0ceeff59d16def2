"""``CliContext``: what every command receives as ``ctx.obj`` (global options, lazy project and store)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from elt.config import Project


@dataclass
class CliContext:
    """What every command receives as ``ctx.obj``: global options and lazy project/store access."""

    #: ``--project-dir``; None = ``ELT_PROJECT_DIR`` or the current directory.
    project_dir: Path | None
    target_name: str | None
    log_format: str = "text"
    verbosity: int = 0
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The validated project (loaded once)."""
        if self._project is None:
            from elt.config import load_project
            from elt.settings import settings

            project_dir = self.project_dir or settings().project_dir or Path(".")
            self._project = load_project(project_dir, self.target_name)
        return self._project

    @contextlib.contextmanager
    def store(self) -> Iterator:
        """An open ``elt.store.Store`` for the project's target."""
        from elt.store import open_store

        with open_store(self.project()) as store:
            yield store
