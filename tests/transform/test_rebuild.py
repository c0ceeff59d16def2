"""The table rebuild (``elt.transform.rebuild``) on a real wire server: a first build inserts, a rebuild leaves
unchanged documents untouched and deletes the keys the result no longer has, a duplicate key fails."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from pymongo.database import Database

from elt.errors import TransformError
from elt.models.project import ModelNode
from elt.models.schema import ModelSpec
from elt.transform.rebuild import COMPARE_LIMIT, rebuild

T0 = datetime(2024, 9, 1, tzinfo=timezone.utc)


def _model() -> ModelNode:
    spec = ModelSpec.model_validate({"name": "squares", "from": "{{ source('s', 'numbers') }}",
                                     "materialized": "table", "unique_key": ["n"], "pipeline": []})  # fmt: skip
    return ModelNode(
        "model.squares", "squares", "aggregations/squares.yml", spec, "source.s.numbers", [], [], "x"
    )


def _pipeline(run_id: str) -> list[dict[str, Any]]:
    return [{"$project": {"_id": 0, "n": 1, "square": {"$multiply": ["$n", "$n"]}}},
            {"$set": {"_updated_at": T0, "_run_id": run_id}}]  # fmt: skip


def _docs(db: Database) -> dict[int, dict[str, Any]]:
    return {d["n"]: d for d in db.squares.find()}


def test_first_build_then_a_rebuild_touches_only_what_changed(mongo_db: Database) -> None:
    assert COMPARE_LIMIT > 10
    mongo_db.numbers.insert_many([{"n": n} for n in range(5)])
    first_build = rebuild(mongo_db, "numbers", _pipeline("r1"), _model(), "r1", T0)
    assert (first_build.rows, first_build.changed_keys) == (5, None)  # written whole: no keys to list
    first = _docs(mongo_db)
    assert {n: d["square"] for n, d in first.items()} == {n: n * n for n in range(5)}
    assert {d["_run_id"] for d in first.values()} == {"r1"}
    indexes = {tuple(i["key"]): i for i in mongo_db.squares.list_indexes()}
    assert set(indexes) >= {("n",), ("_updated_at",)} and indexes[("n",)]["unique"]  # built after the inserts

    mongo_db.numbers.delete_one({"n": 4})
    mongo_db.numbers.update_one({"n": 3}, {"$set": {"n": 7}})
    second_build = rebuild(mongo_db, "numbers", _pipeline("r2"), _model(), "r2", T0)
    assert second_build.rows == 4
    assert sorted(k["n"] for k in second_build.changed_keys or []) == [3, 4, 7]  # 7 written, 3 and 4 deleted

    second = _docs(mongo_db)
    assert {n: d["square"] for n, d in second.items()} == {0: 0, 1: 1, 2: 4, 7: 49}
    assert second[7]["_run_id"] == "r2"
    unchanged = [n for n in (0, 1, 2) if second[n]["_run_id"] == "r1"]
    assert len(unchanged) >= 2  # one may carry the deletion's stamp
    assert all(second[n]["_id"] == first[n]["_id"] for n in (0, 1, 2))


def test_a_duplicate_key_in_the_result_fails_the_rebuild(mongo_db: Database) -> None:
    mongo_db.numbers.insert_many([{"n": 1}, {"n": 1}, {"n": 2}])
    with pytest.raises(TransformError, match="unique_key \\['n'\\] is not unique"):
        rebuild(mongo_db, "numbers", _pipeline("r1"), _model(), "r1", T0)
    mongo_db.numbers.delete_many({})
    mongo_db.numbers.insert_many([{"n": 1}, {"n": 2}])
    assert rebuild(mongo_db, "numbers", _pipeline("r2"), _model(), "r2", T0).rows == 2
    mongo_db.numbers.insert_one({"n": 2})
    with pytest.raises(TransformError, match="is not unique"):
        rebuild(mongo_db, "numbers", _pipeline("r3"), _model(), "r3", T0)


def test_keys_only_the_server_finds_equal_fail_a_first_build_and_leave_nothing(mongo_db: Database) -> None:
    """A first build inserts before its unique index exists: two NaN keys (distinct in Python, equal in BSON)
    pass the client's check, and the index then refuses them."""
    mongo_db.numbers.insert_many([{"n": float("nan")}, {"n": float("nan")}, {"n": 2}])
    with pytest.raises(TransformError, match="unique_key \\['n'\\] is not unique"):
        rebuild(mongo_db, "numbers", _pipeline("r1"), _model(), "r1", T0)
    assert "squares" not in mongo_db.list_collection_names()
