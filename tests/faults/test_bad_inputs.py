"""A corpus of bad configs, profiles and model files: every command exits 2 with an actionable message (the
expected fragment is the first line of each corpus file, ``# expect: ...``), prints no traceback and writes
nothing: no database, no artifact in ``target/``.

Corpus layout: ``corpus/config/*.yml`` replace ``config/elt.yml``; ``corpus/profiles/*.yml`` replace
``config/profiles.yml`` (each case is run through ``elt load``; two of them through every command, which all
validate the project the same way); ``corpus/models/*.yml`` are written into ``aggregations/`` at the path named by their
``# path: ...`` line (replacing the model there, or adding a file).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.faults.helpers import FaultProject, write_project

CORPUS = Path(__file__).parent / "corpus"
_HEADER = re.compile(r"^#\s*(expect|path|xfail):\s*(.+?)\s*$", re.MULTILINE)


def header(path: Path) -> dict[str, str]:
    """The ``# key: value`` lines of a corpus file."""
    return {key: value for key, value in _HEADER.findall(path.read_text())}


def cases(kind: str) -> list[pytest.param]:
    """The corpus files of one kind, sorted; a ``# xfail: <reason>`` line marks a known, reported gap."""
    params = []
    for path in sorted((CORPUS / kind).glob("*.yml")):
        reason = header(path).get("xfail")
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def elt_commands() -> list[tuple[str, ...]]:
    """Every command that reads the project and writes to the database."""
    from elt.cli import main

    commands: list[tuple[str, ...]] = [("load",), ("run", "--no-alerts", "--no-summary")]
    if "transform" in main.commands:
        commands.append(("transform",))
    return commands


@pytest.fixture
def bad_project(
    tmp_path: Path, mongo_server_uri: str, mongo_client: MongoClient
) -> Callable[[], FaultProject]:
    """A valid project (unreachable API on purpose) on a database that must stay absent."""

    def make() -> FaultProject:
        database = f"elt_fault_bad_{tmp_path.name[-12:]}".replace("-", "_")
        return write_project(
            tmp_path / "project", database=database, stations=[("283164601", "SMART188")],
            base_url="http://127.0.0.1:9", mongo_uri=mongo_server_uri, env={"ELT_DATABASE": database},
        )  # fmt: skip

    yield make
    for name in mongo_client.list_database_names():
        if name.startswith(f"elt_fault_bad_{tmp_path.name[-12:]}".replace("-", "_")):
            mongo_client.drop_database(name)


def assert_rejected(project: FaultProject, args: tuple[str, ...], expect: str, client: MongoClient) -> None:
    """Exit 2, the fragment in stderr, no traceback, nothing written."""
    done = project.run(*args)
    shown = f"`elt {' '.join(args)}` stderr:\n{done.stderr[-1500:]}"
    assert done.returncode == 2, shown
    assert expect in done.stderr, f"expected {expect!r} in {shown}"
    assert "Traceback" not in done.stderr, shown
    assert project.database not in client.list_database_names(), f"{shown}\nbut the database was written"
    assert not list((project.directory / "target").glob("*.json")), f"{shown}\nbut artifacts were written"


def test_the_corpus_is_not_empty() -> None:
    assert len(cases("config")) >= 10 and len(cases("profiles")) >= 3
    for param in cases("config") + cases("profiles") + cases("models"):
        assert "expect" in header(param.values[0]), f"{param.values[0]} has no '# expect:' line"


@pytest.mark.parametrize("case", cases("config"))
def test_bad_config_exits_2_and_writes_nothing(
    case: Path, bad_project: Callable[[], FaultProject], mongo_client: MongoClient
) -> None:
    project = bad_project()
    shutil.copy(case, project.directory / "config" / "elt.yml")
    assert_rejected(project, ("load",), header(case)["expect"], mongo_client)


@pytest.mark.parametrize("case", cases("profiles"))
def test_bad_profiles_exit_2_and_write_nothing(
    case: Path, bad_project: Callable[[], FaultProject], mongo_client: MongoClient
) -> None:
    project = bad_project()
    shutil.copy(case, project.directory / "config" / "profiles.yml")
    assert_rejected(project, ("load",), header(case)["expect"], mongo_client)


@pytest.mark.parametrize(
    "kind, name", [("config", "misspelled_timezone"), ("profiles", "password_in_mongo_uri")]
)
def test_every_command_validates_the_project_before_writing(
    kind: str, name: str, bad_project: Callable[[], FaultProject], mongo_client: MongoClient
) -> None:
    case = CORPUS / kind / f"{name}.yml"
    project = bad_project()
    shutil.copy(case, project.directory / "config" / ("elt.yml" if kind == "config" else "profiles.yml"))
    for args in elt_commands():
        assert_rejected(project, args, header(case)["expect"], mongo_client)


def _add_model(project: FaultProject, case: Path) -> None:
    relative = header(case).get("path") or f"marts/{case.stem}.yml"
    destination = project.directory / "aggregations" / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(case, destination)


@pytest.mark.parametrize("case", cases("models"))
def test_bad_model_file_exits_2_and_writes_nothing(
    case: Path, bad_project: Callable[[], FaultProject], mongo_client: MongoClient
) -> None:
    project = bad_project()
    _add_model(project, case)
    assert_rejected(project, ("transform",), header(case)["expect"], mongo_client)


@pytest.mark.parametrize(
    "args",
    [
        ("transform",),
        ("test",),
        ("run", "--no-alerts", "--no-summary"),
    ],
    ids=lambda args: args[0],
)
def test_every_model_command_validates_all_models_before_writing(
    args: tuple[str, ...], bad_project: Callable[[], FaultProject], mongo_client: MongoClient
) -> None:
    case = CORPUS / "models" / "where_operator.yml"
    project = bad_project()
    _add_model(project, case)
    assert_rejected(project, args, header(case)["expect"], mongo_client)
