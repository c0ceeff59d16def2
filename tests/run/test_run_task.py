"""``RunTask`` with stand-in steps: run log, window, skipped and failed steps, aborted runs, busy exit code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pymongo.database import Database

from elt.config import load_project
from elt.errors import ConfigError, RunLockedError, TransformError
from elt.run.lock import Lease
from elt.run.runlog import RUNS_COLLECTION, RunLog, last_successful_run, mark_abandoned
from elt.run.steps import StepContext, StepOutcome, StepSkipped
from elt.run.task import RunTask
from elt.run.window import resolve_window

NOW = datetime(2024, 9, 9, 10, 30, tzinfo=timezone.utc)


def _steps(calls: list[tuple[str, StepContext]], fail: dict[str, Exception] | None = None, skip: str = ""):
    def make(name: str):
        def step(ctx: StepContext) -> StepOutcome:
            calls.append((name, ctx))
            if fail and name in fail:
                raise fail[name]
            if name == skip:
                raise StepSkipped(f"{name} is not installed here")
            return StepOutcome("ok", {"rows": 7})

        return step

    return {name: make(name) for name in ("load", "transform", "test", "forecast", "publish")}


def test_a_full_run_records_every_step_and_anchors_the_next_window(
    project_dir: Path, mongo_db: Database
) -> None:
    project = load_project(project_dir)
    calls: list = []
    result = RunTask(project, mongo_db, step_functions=_steps(calls, skip="publish"), now=NOW).run()
    assert result.ok and result.exit_code == 0
    assert [c[0] for c in calls] == ["load", "transform", "test", "forecast", "publish"]
    assert calls[0][1].window.mode == "initial" and calls[0][1].window.start is None
    record = mongo_db[RUNS_COLLECTION].find_one({"_id": result.run_id})
    assert record["status"] == "success" and record["full"] is True
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("load", "ok"), ("transform", "ok"), ("test", "ok"), ("forecast", "ok"), ("publish", "skipped")
    ]  # fmt: skip
    assert record["steps"][0]["counts"] == {"rows": 7}
    assert record["steps"][4]["reason"] == "publish is not installed here"
    assert record["seconds"] >= 0 and record["finished_at"] >= record["started_at"]

    later = NOW + timedelta(hours=1)
    calls.clear()
    RunTask(project, mongo_db, step_functions=_steps(calls), now=later, lookback_hours=48).run()
    window = calls[0][1].window
    assert window.mode == "incremental"
    assert window.start == NOW - timedelta(hours=48) and window.end == later
    assert window.load_until is None  # the provisional hour is landed too


def test_failed_transform_skips_downstream_and_exits_1(project_dir: Path, mongo_db: Database) -> None:
    project = load_project(project_dir)
    calls: list = []
    fail = {"transform": TransformError("model daily_sensor_averages failed: bad stage")}
    result = RunTask(project, mongo_db, step_functions=_steps(calls, fail=fail), now=NOW).run()
    assert result.exit_code == 1
    assert [c[0] for c in calls] == ["load", "transform"]
    steps = {s["name"]: s for s in result.record["steps"]}
    assert steps["transform"]["status"] == "failed"
    assert "bad stage" in steps["transform"]["error"]
    assert {steps[n]["status"] for n in ("test", "forecast", "publish")} == {"skipped"}
    assert steps["publish"]["reason"] == "not run: step transform failed"
    assert result.record["status"] == "failed" and "transform:" in result.record["error"]
    assert last_successful_run(mongo_db) is None  # a failed run never anchors the window


def test_unexpected_exception_in_a_step_is_that_steps_failure(project_dir: Path, mongo_db: Database) -> None:
    project = load_project(project_dir)
    fail = {"forecast": ZeroDivisionError("division by zero")}
    result = RunTask(project, mongo_db, step_functions=_steps([], fail=fail), now=NOW).run()
    assert result.step("forecast")["error"] == "unexpected ZeroDivisionError: division by zero"
    assert result.step("publish")["status"] == "ok"  # a failed forecast does not block publishing the marts


def test_errors_in_the_run_log_are_redacted(project_dir: Path, mongo_db: Database) -> None:
    project = load_project(project_dir)
    fail = {
        "load": TransformError("GET https://user:hunter2@api.example/x failed, Authorization: Bearer abc.def")
    }
    result = RunTask(project, mongo_db, step_functions=_steps([], fail=fail), now=NOW).run()
    stored = str(mongo_db[RUNS_COLLECTION].find_one({"_id": result.run_id}))
    assert "hunter2" not in stored and "abc.def" not in stored


def test_per_step_calls_with_one_run_id_build_one_full_record(project_dir: Path, mongo_db: Database) -> None:
    project = load_project(project_dir)
    start, end = NOW - timedelta(hours=1), NOW
    for name in ("load", "transform", "test", "forecast", "publish"):
        result = RunTask(project, mongo_db, start=start, end=end, steps=[name], run_id="airflow-x",
                         trigger="airflow", step_functions=_steps([])).run()  # fmt: skip
        assert result.ok
    record = mongo_db[RUNS_COLLECTION].find_one({"_id": "airflow-x"})
    assert [s["name"] for s in record["steps"]] == ["load", "transform", "test", "forecast", "publish"]
    assert record["full"] is True and record["window"] == {"start": start, "end": end, "mode": "explicit"}
    assert mongo_db[RUNS_COLLECTION].count_documents({}) == 1


def test_a_killed_runs_record_is_marked_aborted_by_the_next_run(
    project_dir: Path, mongo_db: Database
) -> None:
    project = load_project(project_dir)
    killed = RunLog(mongo_db, "run-killed")
    killed.start({"start": None, "end": NOW, "mode": "initial"})
    killed.step_started("transform")  # the process died here: no finish, no release
    result = RunTask(project, mongo_db, step_functions=_steps([]), now=NOW).run()
    assert result.ok
    old = mongo_db[RUNS_COLLECTION].find_one({"_id": "run-killed"})
    assert old["status"] == "aborted" and old["recovered_by"] == result.run_id
    assert old["steps"][0]["status"] == "aborted"
    assert mark_abandoned(mongo_db, "whatever") == 0


def test_the_run_after_a_killed_one_tests_and_publishes_everything(
    project_dir: Path, mongo_db: Database
) -> None:
    """What the killed run wrote may be in no change record (or in one no publish read): the next run's test
    step does a full pass and its publish reads everything, in every step call of that run; the run after
    audits again."""
    from elt.run.steps import full_test_pass_reason

    project = load_project(project_dir)
    killed = RunLog(mongo_db, "run-killed")
    killed.start({"start": None, "end": NOW, "mode": "initial"})
    killed.step_started("transform")
    calls: list[tuple[str, StepContext]] = []
    after = RunTask(
        project, mongo_db, step_functions=_steps(calls), now=NOW, steps=["load"], run_id="dag-1"
    ).run()
    RunTask(project, mongo_db, step_functions=_steps(calls), now=NOW, steps=["test"], run_id="dag-1").run()
    assert after.ok and [c.after_crash for _, c in calls] == [True, True]
    assert "killed or crashed" in (full_test_pass_reason(calls[1][1]) or "")
    calls.clear()
    RunTask(project, mongo_db, step_functions=_steps(calls), now=NOW, steps=["test"], run_id="dag-2").run()
    assert [c.after_crash for _, c in calls] == [False]


def test_a_run_while_another_holds_the_lease_is_busy(project_dir: Path, mongo_db: Database) -> None:
    project = load_project(project_dir)
    calls: list = []
    with Lease(mongo_db, run_id="holder"), pytest.raises(RunLockedError):
        RunTask(project, mongo_db, step_functions=_steps(calls)).run()
    assert calls == [] and mongo_db[RUNS_COLLECTION].count_documents({}) == 0


def test_explicit_windows_are_exact_and_validated(mongo_db: Database) -> None:
    start, end = datetime(2024, 9, 1), datetime(2024, 9, 2, 6)
    window = resolve_window(mongo_db, start, end)
    assert (window.start, window.end, window.mode) == (start.replace(tzinfo=timezone.utc),
                                                       end.replace(tzinfo=timezone.utc), "explicit")  # fmt: skip
    assert window.load_until == window.end.replace(hour=6)
    airflow = resolve_window(mongo_db, datetime(2024, 9, 9, 10, 5), datetime(2024, 9, 9, 11, 5))
    assert (airflow.load_since, airflow.load_until) == (datetime(2024, 9, 9, 10, tzinfo=timezone.utc),
                                                        datetime(2024, 9, 9, 11, tzinfo=timezone.utc))  # fmt: skip
    with pytest.raises(ConfigError, match="--end needs --start"):
        resolve_window(mongo_db, None, end)
    with pytest.raises(ConfigError, match="must be before"):
        resolve_window(mongo_db, end, start)


def test_unknown_step_names_are_a_usage_error(project_dir: Path, mongo_db: Database) -> None:
    with pytest.raises(ConfigError, match="choose from load, transform, test, forecast, publish"):
        RunTask(load_project(project_dir), mongo_db, steps=["deploy"])
