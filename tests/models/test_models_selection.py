"""--select / --exclude with dbt's syntax and semantics, and the graph's order and cycle detection, on a small
project:

    source airqino.hourly -> a -> b -> c -> e
                             a -> d ------> e   (e reads d through a $lookup)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from elt.config import load_project
from elt.errors import ModelError
from elt.models import ModelProject, load_models
from elt.models.graph import CycleError, Graph
from elt.models.selection import resolve_selection, selected_models, selected_tests

REPO = Path(__file__).resolve().parents[2]


def _model(name: str, parent: str, tags: list[str], extra: str = "", materialized: str = "table") -> str:
    source = "{{ source('airqino', 'hourly') }}" if parent == "source" else f"{{{{ ref('{parent}') }}}}"
    return (f"name: {name}\nfrom: \"{source}\"\nmaterialized: {materialized}\ntags: {tags}\n"
            f"columns:\n  - name: station_id\n    tests: [not_null]\n"
            f"pipeline:\n  - $match: {{station_id: {{$ne: null}}}}\n{extra}")  # fmt: skip


@pytest.fixture(scope="module")
def mp(tmp_path_factory: pytest.TempPathFactory) -> ModelProject:
    root = tmp_path_factory.mktemp("selection")
    (root / "config").mkdir()
    shutil.copy(REPO / "config" / "elt.yml", root / "config" / "elt.yml")
    models = root / "aggregations"
    (models / "staging").mkdir(parents=True)
    (models / "marts").mkdir()
    shutil.copy(REPO / "aggregations" / "sources.yml", models / "sources.yml")
    (models / "staging" / "a.yml").write_text(_model("a", "source", ["staging"]))
    (models / "marts" / "b.yml").write_text(_model("b", "a", ["x"]))
    (models / "marts" / "c.yml").write_text(_model("c", "b", []))
    (models / "marts" / "d.yml").write_text(_model("d", "a", ["x", "y"], materialized="view"))
    lookup = (
        "  - $lookup: {from: \"{{ ref('d') }}\", localField: station_id, foreignField: station_id, as: d}\n"
    )
    (models / "marts" / "e.yml").write_text(_model("e", "c", ["y"], lookup))
    return load_models(load_project(root))


def names(uids: set[str] | list[str]) -> set[str]:
    return {uid.split(".")[-1] for uid in uids if uid.startswith("model.")}


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        (["b"], {"b"}),
        (["+b"], {"a", "b"}),
        (["b+"], {"b", "c", "e"}),
        (["+c+"], {"a", "b", "c", "e"}),
        (["1+c"], {"b", "c"}),
        (["a+1"], {"a", "b", "d"}),
        (["tag:x"], {"b", "d"}),
        (["tag:x tag:y"], {"b", "d", "e"}),  # space = union
        (["tag:x", "c"], {"b", "c", "d"}),  # repeated --select = union
        (["tag:x,tag:y"], {"d"}),  # comma = intersection
        (["tag:x,+e"], {"b", "d"}),
        (["@c"], {"a", "b", "c", "d", "e"}),  # c, its descendants, and all their ancestors
        (["source:airqino+"], {"a", "b", "c", "d", "e"}),
        (["source:airqino.hourly+1"], {"a"}),
        (["path:aggregations/marts"], {"b", "c", "d", "e"}),
        (["aggregations/staging/a.yml"], {"a"}),
        (["config.materialized:view"], {"d"}),
        (["[a-c]"], {"a", "b", "c"}),
        (["*"], {"a", "b", "c", "d", "e"}),
    ],
)
def test_select(mp: ModelProject, select: list[str], expected: set[str]) -> None:
    assert names(resolve_selection(mp, select)) == expected


def test_exclude_is_subtracted(mp: ModelProject) -> None:
    assert names(resolve_selection(mp, ["a+"], ["tag:y"])) == {"a", "b", "c"}
    assert names(resolve_selection(mp, [], ["c+"])) == {"a", "b", "d"}


def test_selected_models_run_parents_first(mp: ModelProject) -> None:
    order = [uid.split(".")[-1] for uid in selected_models(mp, ["+e"])]
    assert order.index("a") < order.index("b") < order.index("c") < order.index("e")
    assert order.index("d") < order.index("e")


def test_tests_follow_their_nodes(mp: ModelProject) -> None:
    assert selected_tests(mp, ["b"]) == ["test.not_null_b_station_id"]
    assert set(selected_tests(mp, ["tag:y"])) == {"test.not_null_d_station_id", "test.not_null_e_station_id"}
    assert "test.not_null_b_station_id" not in selected_tests(mp, [], ["b"])
    assert selected_tests(mp, ["not_null_c_station_id"]) == ["test.not_null_c_station_id"]
    assert "test.source_freshness_airqino_hourly" in selected_tests(mp, ["source:airqino"])


def test_lookup_ref_is_a_dependency(mp: ModelProject) -> None:
    assert mp.models["model.e"].depends_on == ["model.c", "model.d"]
    assert mp.graph.children["model.d"] == ["model.e", "test.not_null_d_station_id"]


@pytest.mark.parametrize(("select", "message"), [
    (["stg_nothing"], "'stg_nothing' matches no model"),
    (["bb"], "did you mean 'b'"),
    (["tags:x"], "unknown selector method 'tags'; did you mean 'tag'"),
])  # fmt: skip
def test_bad_selector_is_a_usage_error(mp: ModelProject, select: list[str], message: str) -> None:
    with pytest.raises(ModelError, match=message) as error:
        resolve_selection(mp, select)
    assert error.value.exit_code == 2


def test_cycle_is_named_in_order() -> None:
    graph = Graph({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    assert graph.find_cycle() == ["a", "c", "b", "a"]
    with pytest.raises(CycleError, match="a -> c -> b -> a"):
        graph.topological_order()
    assert Graph({"x": ["y"], "y": []}).topological_order() == ["y", "x"]
