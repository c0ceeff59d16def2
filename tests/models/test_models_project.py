"""Project validation: every bad model file is refused with the file, the model and the problem named, and
nothing is written (no collection, no artifact); plus rendering rules and the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymongo.database import Database

from elt.cli import main
from elt.config import load_project
from elt.errors import ModelError
from elt.models import load_models
from elt.models.render import Relations, Renderer, RenderScope, expand_field_timezones
from tests.conftest import REPO_ROOT

GOOD_MART = """\
name: {name}
from: "{{{{ ref('stg_airqino_hourly') }}}}"
materialized: table
pipeline:
  - $match: {{station_id: {{$ne: null}}}}
"""

#: The shipped chart mart, a model with ``retain`` and a published window.
_SHIPPED_CHART_MART = (REPO_ROOT / "aggregations" / "marts" / "forecast_vs_observed.yml").read_text()
_SHIPPED_STAGING = (REPO_ROOT / "aggregations" / "staging" / "stg_airqino_hourly.yml").read_text()
_STAGING_REACH = (
    "\"{{ ([var('stuck_hours'), var('dead_zero_hours')] | max - 1) * (var('max_gap_hours') + 1) }}h\""
)

BAD_PROJECTS = {
    "yaml_syntax": (
        "marts/broken.yml",
        "name: broken\nfrom: \"{{ ref('stg_airqino_hourly') }}\"\npipeline:\n  - $match: {station_id: [1, 2}\n",
        ["aggregations/marts/broken.yml", "line 4", "invalid YAML"],
    ),
    "unknown_ref": (
        "marts/typo.yml",
        GOOD_MART.format(name="typo").replace("stg_airqino_hourly", "stg_airqino_hourli"),
        [
            "aggregations/marts/typo.yml",
            "model 'typo'",
            "unknown ref 'stg_airqino_hourli'",
            "did you mean 'stg_airqino_hourly'",
        ],
    ),
    "unknown_key": (
        "marts/keys.yml",
        GOOD_MART.format(name="keys").replace("materialized: table", "materialised: table"),
        [
            "aggregations/marts/keys.yml",
            "model 'keys'",
            "materialised: unknown key",
            "did you mean 'materialized'",
        ],
    ),
    "unknown_materialization": (
        "marts/kind.yml",
        GOOD_MART.format(name="kind").replace("materialized: table", "materialized: incrementl"),
        [
            "aggregations/marts/kind.yml",
            "model 'kind'",
            "'incrementl' is not one of",
            "did you mean 'incremental'",
        ],
    ),
    "incremental_without_key": (
        "marts/nokey.yml",
        GOOD_MART.format(name="nokey").replace("materialized: table", "materialized: incremental"),
        ["aggregations/marts/nokey.yml", "model 'nokey'", "needs unique_key"],
    ),
    "where": (
        "marts/js.yml",
        GOOD_MART.format(name="js").replace("{station_id: {$ne: null}}", "{$where: 'this.co > 1'}"),
        ["aggregations/marts/js.yml", "model 'js'", "$where is not allowed", "JavaScript"],
    ),
    "function": (
        "marts/fn.yml",
        GOOD_MART.format(name="fn").replace(
            "$match: {station_id: {$ne: null}}",
            "$addFields: {x: {$function: {body: 'function() {return 1}', args: [], lang: js}}}",
        ),
        ["aggregations/marts/fn.yml", "model 'fn'", "$function is not allowed"],
    ),
    "accumulator": (
        "marts/acc.yml",
        GOOD_MART.format(name="acc").replace(
            "$match: {station_id: {$ne: null}}",
            "$group: {_id: null, x: {$accumulator: {init: 'function() {}', accumulate: 'f', accumulateArgs: [],"
            " merge: 'f', lang: js}}}",
        ),
        ["model 'acc'", "$accumulator is not allowed"],
    ),
    "out": (
        "marts/out.yml",
        GOOD_MART.format(name="out").rstrip() + "\n  - $out: somewhere\n",
        ["aggregations/marts/out.yml", "model 'out'", "pipeline[1]: $out is not allowed"],
    ),
    "merge_in_subpipeline": (
        "marts/sub.yml",
        GOOD_MART.format(name="sub").rstrip() + "\n  - $facet: {a: [{$merge: {into: raw_airqino_hourly}}]}\n",
        ["model 'sub'", "$merge is not allowed"],
    ),
    "write_to_source": (
        "marts/raw.yml",
        GOOD_MART.format(name="raw_airqino_hourly"),
        ["model 'raw_airqino_hourly'", "would write to the source collection 'raw_airqino_hourly'"],
    ),
    "undeclared_lookup": (
        "marts/look.yml",
        GOOD_MART.format(name="look").rstrip()
        + "\n  - $lookup: {from: raw_airqino_hourly, localField: station_id, foreignField: station_id, as: r}\n",
        ["model 'look'", "$lookup.from: reads 'raw_airqino_hourly' by name", "ref('model')"],
    ),
    "duplicate_key": (
        "marts/dup.yml",
        GOOD_MART.format(name="dup") + "materialized: view\n",
        ["aggregations/marts/dup.yml", "duplicate key 'materialized'"],
    ),
    "unknown_var": (
        "marts/var.yml",
        GOOD_MART.format(name="var").replace("{$ne: null}", "{$gt: \"{{ var('min_hours_per_dya') }}\"}"),
        ["model 'var'", "unknown var 'min_hours_per_dya'", "did you mean 'min_hours_per_day'"],
    ),
    "unknown_test": (
        "marts/tst.yml",
        GOOD_MART.format(name="tst") + "columns:\n  - name: station_id\n    tests: [not_nul]\n",
        ["model 'tst'", "unknown test 'not_nul'", "did you mean 'not_null'"],
    ),
    "lookup_from_dict": (
        "marts/look_dict.yml",
        GOOD_MART.format(name="look_dict").rstrip()
        + "\n  - $lookup: {from: {db: admin, coll: system.users}, localField: a, foreignField: b, as: r}\n",
        ["model 'look_dict'", "$lookup.from: must be a collection name", "got dict"],
    ),
    "huge_range": (
        "marts/huge.yml",
        GOOD_MART.format(name="huge").replace("{$ne: null}", '{$in: "{{ range(10**7) | list }}"}'),
        ["model 'huge'", "pipeline[0].$match.station_id.$in: template", "Range too big"],
    ),
    "huge_power": (
        "marts/power.yml",
        GOOD_MART.format(name="power").replace("{$ne: null}", '{$gt: "{{ 10 ** 100000000 }}"}'),
        ["model 'power'", "exponent", "too large"],
    ),
    "stations_pop": (
        "marts/pop.yml",
        GOOD_MART.format(name="pop").replace("{$ne: null}", '{$ne: "{{ stations.pop() }}"}'),
        ["model 'pop'", "template error", "pop"],
    ),
    "publish_without_key": (
        "marts/pub.yml",
        GOOD_MART.format(name="pub") + "publish: {}\ncolumns:\n  - name: station_id\n",
        ["aggregations/marts/pub.yml", "model 'pub'", "publish needs unique_key"],
    ),
    "publish_window_not_a_column": (
        "marts/win.yml",
        GOOD_MART.format(name="win").replace(
            "materialized: table", "materialized: table\nunique_key: [station_id]"
        )
        + "publish: {window: {field: ts, days: 30}}\ncolumns:\n  - name: station_id\n",
        [
            "aggregations/marts/win.yml",
            "model 'win'",
            "window field 'ts' is not among the documented columns",
        ],
    ),
    "retain_without_event_time": (
        "marts/ret.yml",
        GOOD_MART.format(name="ret").replace(
            "materialized: table",
            "materialized: incremental\nunique_key: [station_id]\npartition_by: [station_id]",
        )
        + "retain: 8d\n",
        ["aggregations/marts/ret.yml", "retain needs event_time"],
    ),
    "retain_shorter_than_the_published_window": (
        "marts/forecast_vs_observed.yml",
        _SHIPPED_CHART_MART.replace("retain: 8d", "retain: 6d"),
        ["model 'forecast_vs_observed'", "retain: keeps less than the 7 days that publish.window serves"],
    ),
    "retain_published_without_window": (
        "marts/forecast_vs_observed.yml",
        _SHIPPED_CHART_MART.replace("window: {field: ts, days: 7}, ", ""),
        ["model 'forecast_vs_observed'", "needs publish.window on ts"],
    ),
    "runs_without_event_time": (
        "marts/runs.yml",
        GOOD_MART.format(name="runs").replace(
            "materialized: table",
            "materialized: incremental\nunique_key: [station_id]\npartition_by: [station_id]",
        )
        + "runs: {fields: [co], min_run: 24, max_step: 7h}\n",
        ["aggregations/marts/runs.yml", "runs needs event_time, lookback and lookahead"],
    ),
    "runs_beyond_the_lookback": (
        "staging/stg_airqino_hourly.yml",
        _SHIPPED_STAGING.replace(f"lookback: {_STAGING_REACH}", "lookback: 100h"),
        [
            "model 'stg_airqino_hourly'",
            "reaches (min_run - 1) x max_step = 161 h, beyond lookback/lookahead (100 h",
        ],
    ),
    "cycle": (
        "marts/cycle_a.yml",
        GOOD_MART.format(name="cycle_a").replace("stg_airqino_hourly", "cycle_b"),
        ["dependency cycle: cycle_a -> cycle_b -> cycle_a", "aggregations/marts/cycle_a.yml"],
    ),
}


def _write_case(project_dir: Path, case: str) -> list[str]:
    relative, text, expected = BAD_PROJECTS[case]
    (project_dir / "aggregations" / relative).write_text(text)
    if case == "cycle":
        (project_dir / "aggregations" / "marts" / "cycle_b.yml").write_text(
            GOOD_MART.format(name="cycle_b").replace("stg_airqino_hourly", "cycle_a")
        )
    return expected


@pytest.mark.parametrize("case", sorted(BAD_PROJECTS))
def test_bad_project_is_refused_with_its_message(project_dir: Path, case: str) -> None:
    expected = _write_case(project_dir, case)
    with pytest.raises(ModelError) as error:
        load_models(load_project(project_dir))
    message = str(error.value)
    assert error.value.exit_code == 2
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


@pytest.mark.parametrize(
    "case",
    ["unknown_ref", "out", "cycle", "write_to_source", "lookup_from_dict", "huge_range", "stations_pop"],
)
def test_bad_project_writes_nothing_and_exits_2(project_dir: Path, mongo_db: Database, case: str) -> None:
    expected = _write_case(project_dir, case)
    mongo_db.raw_airqino_hourly.insert_one({"_id": "x|2024-01-01T00:00Z", "station_id": "x"})
    outcome = CliRunner().invoke(main, ["--project-dir", str(project_dir), "transform"])
    assert outcome.exit_code == 2, outcome.output
    assert expected[-1] in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert mongo_db.list_collection_names() == ["raw_airqino_hourly"]
    assert (
        list(mongo_db.raw_airqino_hourly.list_indexes())
        and len(list(mongo_db.raw_airqino_hourly.list_indexes())) == 1
    )
    assert not (project_dir / "target").exists()


def test_all_problems_are_reported_at_once(project_dir: Path) -> None:
    _write_case(project_dir, "unknown_ref")
    _write_case(project_dir, "where")
    with pytest.raises(ModelError) as error:
        load_models(load_project(project_dir))
    assert "unknown ref" in str(error.value) and "$where" in str(error.value)


def test_shipped_project_is_valid_and_wired(project_dir: Path) -> None:
    mp = load_models(load_project(project_dir))
    assert set(mp.models) >= {"model.stg_airqino_hourly", "model.daily_sensor_averages",
                              "model.station_day_last_hours", "model.station_freshness"}  # fmt: skip
    assert mp.models["model.daily_sensor_averages"].depends_on == ["model.stg_airqino_hourly"]
    assert mp.models["model.stg_airqino_hourly"].depends_on == ["source.airqino.hourly"]
    staging = mp.models["model.stg_airqino_hourly"]
    # (max(stuck, dead) - 1) * (max_gap_hours + 1) hours: a run bridges gaps
    assert (staging.lookback_s, staging.lookahead_s) == (23 * 7 * 3600, 23 * 7 * 3600)
    assert {t.kind for t in mp.tests.values()} >= {"unique", "not_null", "accepted_values", "accepted_range",
                                                  "relationships", "completeness", "freshness"}  # fmt: skip


def test_lookback_follows_the_qc_vars(project_dir: Path) -> None:
    mp = load_models(load_project(project_dir), {"dead_zero_hours": 48})
    assert mp.models["model.stg_airqino_hourly"].lookback_s == 47 * 7 * 3600
    mp = load_models(load_project(project_dir), {"dead_zero_hours": 48, "max_gap_hours": 0})
    assert mp.models["model.stg_airqino_hourly"].lookback_s == 47 * 3600  # the strict rule


def _renderer() -> Renderer:
    relations = Relations(models={"stg": "stg"}, sources={("airqino", "hourly"): "raw_airqino_hourly"})
    stations = [
        {"id": "1", "name": "ONE", "timezone": "Europe/Rome"},
        {"id": "2", "name": "TWO", "timezone": "UTC"},
    ]
    return Renderer(relations, stations, {"max_co": 50})


def test_single_expressions_keep_their_native_type() -> None:
    scope = RenderScope()
    value = _renderer().render(
        {"a": "{{ var('max_co') }}", "b": "{{ station_ids }}", "c": "co <= {{ var('max_co') }}",
         "d": "{{ ref('stg') }}", "e": "{{ source('airqino', 'hourly') }}", "f": "{{ var('x', 3) + 1 }}"},
        scope,
    )  # fmt: skip
    assert value == {"a": 50, "b": ["1", "2"], "c": "co <= 50", "d": "stg", "e": "raw_airqino_hourly", "f": 4}
    assert scope.refs == ["stg"] and scope.sources == [("airqino", "hourly")] and not scope.errors


def test_sandbox_refuses_python_internals() -> None:
    scope = RenderScope()
    _renderer().render({"x": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, scope)
    assert scope.errors and "x: template error" in scope.errors[0]


def test_templates_cannot_change_what_other_templates_see() -> None:
    renderer = _renderer()
    renderer.project_vars["ids"] = ["a", "b"]
    attempts = ["{{ stations.pop() }}", "{{ stations[0].update({'id': 'x'}) }}", "{{ station_ids.append(9) }}",
                "{{ var('ids').clear() }}", "{{ stations.__setitem__(0, 1) }}"]  # fmt: skip
    for attempt in attempts:
        scope = RenderScope()
        renderer.render({"x": attempt}, scope)
        assert scope.errors, attempt
    scope = RenderScope()
    value = renderer.render({"s": "{{ stations }}", "i": "{{ station_ids }}", "v": "{{ var('ids') }}"}, scope)
    assert not scope.errors
    assert value == {"s": [{"id": "1", "name": "ONE", "timezone": "Europe/Rome"},
                           {"id": "2", "name": "TWO", "timezone": "UTC"}], "i": ["1", "2"], "v": ["a", "b"]}  # fmt: skip


def test_field_timezone_becomes_a_switch_over_station_timezones() -> None:
    expanded = expand_field_timezones({"$hour": {"date": "$ts", "timezone": "$_tz"}}, ["Europe/Rome", "UTC"])
    branches = expanded["$switch"]["branches"]
    assert [b["then"]["$hour"]["timezone"] for b in branches] == ["Europe/Rome", "UTC"]
    assert expanded["$switch"]["default"] == {"$hour": {"date": "$ts", "timezone": "UTC"}}
    constant = {"$hour": {"date": "$ts", "timezone": "Africa/Abidjan"}}
    assert expand_field_timezones(constant, ["Europe/Rome"]) == constant


def test_schema_models_prints_the_json_schema() -> None:
    outcome = CliRunner().invoke(main, ["schema", "models"])
    assert outcome.exit_code == 0
    schema = json.loads(outcome.stdout)
    model = schema["$defs"]["ModelSpec"]
    assert {"name", "from", "pipeline", "materialized", "unique_key", "partition_by", "lookback"} <= set(
        model["properties"]
    )
    assert model["additionalProperties"] is False
    assert "SourcesFile" in schema["$defs"] and "completeness_test" in schema["$defs"]
