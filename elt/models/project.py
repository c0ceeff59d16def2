"""Load and validate every file of ``aggregations/`` into one graph of sources, models and tests.

Nothing runs before the whole project validates: every problem of every file is collected and reported at once
(file, model, key path, what to do) as one ``ModelError`` (exit code 2).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from elt.config import Project
from elt.errors import ModelError
from elt.models.graph import CycleError, Graph
from elt.models.render import FULL_END, FULL_START, Relations, Renderer, RenderScope, expand_field_timezones
from elt.models.runs import Runs
from elt.models.safety import check_pipeline, literal_relations, write_target_problem
from elt.models.schema import ModelSpec, SourcesFile, SourceTableSpec, duration_seconds
from elt.models.tests_spec import TestNode, build_tests
from elt.owned import writer_of
from elt.yamlfile import YamlProblem, describe_validation, read_yaml_with_lines

MODELS_DIR = "aggregations"


@dataclass
class SourceNode:
    """A source collection (written by ``elt load``, read by models)."""

    unique_id: str
    source_name: str
    name: str
    collection: str
    path: str
    spec: SourceTableSpec
    description: str = ""


@dataclass
class ModelNode:
    """A validated model: its spec, rendered pipeline and dependencies."""

    unique_id: str
    name: str
    path: str
    spec: ModelSpec
    from_id: str
    depends_on: list[str]
    compiled_pipeline: list[dict[str, Any]]
    checksum: str
    lookback_s: int = 0
    lookahead_s: int = 0
    #: ``retain`` in seconds (0: keep every output).
    retain_s: int = 0
    #: ``runs:`` rendered (None: a change recomputes ``lookback``/``lookahead`` around it).
    runs: Runs | None = None

    @property
    def collection(self) -> str:
        """The collection the model materializes (its name)."""
        return self.name


@dataclass
class ModelProject:
    """The whole validated ``aggregations/`` folder."""

    project: Project
    renderer: Renderer
    cli_vars: dict[str, Any]
    sources: dict[str, SourceNode] = field(default_factory=dict)
    models: dict[str, ModelNode] = field(default_factory=dict)
    tests: dict[str, TestNode] = field(default_factory=dict)
    graph: Graph = field(default_factory=lambda: Graph({}))

    def collection_of(self, unique_id: str) -> str:
        """The collection of a model or source node."""
        if unique_id in self.models:
            return self.models[unique_id].collection
        return self.sources[unique_id].collection

    def model_vars(self, model: ModelNode) -> dict[str, Any]:
        """Variables visible to ``model`` (its own override the project's; --vars override both)."""
        return {**model.spec.vars, **self.cli_vars}

    def render_pipeline(
        self,
        model: ModelNode,
        start: datetime = FULL_START,
        end: datetime = FULL_END,
        partition: Mapping[str, Any] | None = None,
    ) -> list:
        """The model's pipeline rendered for a run window and an incremental batch's ``partition`` (validated
        once already, so errors are bugs)."""
        scope = RenderScope()
        rendered = self.renderer.render(
            model.spec.pipeline, scope, self.model_vars(model), start, end, "pipeline", partition
        )
        if scope.errors:
            raise ModelError(f"{model.path}: model '{model.name}': " + "; ".join(scope.errors))
        return expand_field_timezones(rendered, self._timezones())

    def _timezones(self) -> list[str]:
        return [s.timezone for s in self.project.config.stations]


def _display(path: Path, project_dir: Path) -> str:
    try:
        return str(path.relative_to(project_dir))
    except ValueError:
        return str(path)


def load_models(project: Project, cli_vars: Mapping[str, Any] | None = None) -> ModelProject:
    """Read and validate ``aggregations/``; a ``ModelError`` lists every problem found."""
    root = project.project_dir / MODELS_DIR
    if not root.is_dir():
        raise ModelError(f"{MODELS_DIR}/: folder not found in {project.project_dir}; models live there")
    stations = [s.model_dump() for s in project.config.stations]
    problems: list[str] = []
    model_specs: list[tuple[str, ModelSpec]] = []
    source_specs: list[tuple[str, SourcesFile]] = []
    invalid_models: set[str] = set()
    for path in sorted([*root.rglob("*.yml"), *root.rglob("*.yaml")]):
        display = _display(path, project.project_dir)
        try:
            data, lines = read_yaml_with_lines(path)
        except YamlProblem as exc:
            problems.append(f"{display}: {exc}")
            continue
        if data is None:
            continue
        kind, spec_class = _file_kind(data)
        if spec_class is None:
            problems.append(f"{display}: {kind}")
            continue
        name = (
            f"model '{data.get('name')}': " if kind == "model" and isinstance(data.get("name"), str) else ""
        )
        try:
            spec = spec_class.model_validate(data)
        except ValidationError as exc:
            for problem in describe_validation(exc, spec_class, lines):
                line, _, rest = problem.partition(": ") if problem.startswith("line ") else ("", "", problem)
                problems.append(f"{display}: {line + ': ' if line else ''}{name}{rest}")
            if kind == "model" and isinstance(data.get("name"), str):
                invalid_models.add(data["name"])
            continue
        (model_specs if kind == "model" else source_specs).append((display, spec))  # type: ignore[arg-type]

    sources = _source_nodes(source_specs, problems)
    relations = Relations(
        models={spec.name: spec.name for _, spec in model_specs},
        sources={(n.source_name, n.name): n.collection for n in sources.values()},
        invalid_models=frozenset(invalid_models - {spec.name for _, spec in model_specs}),
    )
    renderer = Renderer(relations, stations, project.config.vars)
    mp = ModelProject(project=project, renderer=renderer, cli_vars=dict(cli_vars or {}), sources=sources)
    _check_names(model_specs, sources, problems)
    for display, spec in model_specs:
        node = _model_node(mp, display, spec, problems)
        if node is not None:
            mp.models[node.unique_id] = node
    _check_incremental_inputs(mp, problems)
    for model in mp.models.values():
        tests = build_tests(renderer, model.unique_id, model.path, model.spec.columns, model.spec.tests,
                            variables=mp.model_vars(model))  # fmt: skip
        _add_tests(mp, tests, problems)
    for source in sources.values():
        tests = build_tests(renderer, source.unique_id, source.path, source.spec.columns, source.spec.tests,
                            freshness=source.spec.freshness, variables=mp.cli_vars)  # fmt: skip
        _add_tests(mp, tests, problems)
    _check_cli_vars(mp, model_specs, problems)
    parents: dict[str, list[str]] = {uid: [] for uid in sources}
    parents.update({uid: m.depends_on for uid, m in mp.models.items()})
    parents.update({uid: t.depends_on for uid, t in mp.tests.items()})
    mp.graph = Graph(parents)
    try:
        mp.graph.topological_order()
    except CycleError as exc:
        named = " -> ".join(uid.split(".", 1)[1] for uid in exc.cycle)
        files = sorted({mp.models[uid].path for uid in exc.cycle if uid in mp.models})
        problems.append(f"dependency cycle: {named} (each model refs the next; files: {', '.join(files)})")
    if problems:
        raise ModelError("invalid project, nothing was run:\n  - " + "\n  - ".join(problems))
    return mp


def _check_cli_vars(mp: ModelProject, model_specs: list[tuple[str, ModelSpec]], problems: list[str]) -> None:
    """``--vars`` may only set variables the project knows: config vars, a model's vars, or ones a model reads."""
    known = set(mp.project.config.vars) | mp.renderer.used_vars
    for _, spec in model_specs:
        known |= set(spec.vars)
    for name in sorted(set(mp.cli_vars) - known):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(f"--vars: unknown var '{name}'{hint} (known: {', '.join(sorted(known))})")


def _file_kind(data: Any) -> tuple[str, type | None]:
    if not isinstance(data, dict):
        return f"expected a mapping (a model or a sources: list), got {type(data).__name__}", None
    if "sources" in data:
        return "sources", SourcesFile
    if "name" in data or "pipeline" in data:
        return "model", ModelSpec
    return "not a model (name, from, pipeline, ...) nor a sources file (sources: [...])", None


def _source_nodes(files: list[tuple[str, SourcesFile]], problems: list[str]) -> dict[str, SourceNode]:
    nodes: dict[str, SourceNode] = {}
    for display, spec in files:
        for source in spec.sources:
            for table in source.tables:
                uid = f"source.{source.name}.{table.name}"
                if uid in nodes:
                    problems.append(f"{display}: source '{source.name}.{table.name}' is also declared in "
                                    f"{nodes[uid].path}")  # fmt: skip
                    continue
                nodes[uid] = SourceNode(uid, source.name, table.name, table.collection or table.name, display,
                                        table, table.description or source.description)  # fmt: skip
    return nodes


def _check_names(
    models: list[tuple[str, ModelSpec]], sources: dict[str, SourceNode], problems: list[str]
) -> None:
    seen: dict[str, str] = {}
    source_collections = {s.collection: s for s in sources.values()}
    for display, spec in models:
        if spec.name in seen:
            problems.append(f"{display}: model '{spec.name}' is also defined in {seen[spec.name]}")
        seen.setdefault(spec.name, display)
        if spec.name in source_collections:
            src = source_collections[spec.name]
            problems.append(f"{display}: model '{spec.name}' would write to the source collection "
                            f"'{src.collection}' ({src.source_name}.{src.name}), which only "
                            f"{writer_of(src.collection)} writes. Rename the model.")  # fmt: skip
            continue
        reserved = write_target_problem(spec.name)
        if reserved:
            problems.append(f"{display}: model '{spec.name}': this collection name is reserved: {reserved}; "
                            "rename the model")  # fmt: skip


def _model_node(mp: ModelProject, display: str, spec: ModelSpec, problems: list[str]) -> ModelNode | None:
    prefix = f"{display}: model '{spec.name}': "
    renderer = mp.renderer
    variables = {**spec.vars, **mp.cli_vars}
    scope = RenderScope()
    from_collection = renderer.render(spec.from_, scope, variables, where="from")
    from_ids = [f"model.{r}" for r in scope.refs] + [f"source.{s}.{t}" for s, t in scope.sources]
    expected = [renderer.relations.models.get(r) for r in scope.refs] + [
        renderer.relations.sources.get(key) for key in scope.sources
    ]
    if not scope.errors and (len(from_ids) != 1 or from_collection != expected[0]):
        scope.errors.append(
            "from: must be exactly \"{{ ref('model') }}\" or \"{{ source('source', 'table') }}\""
        )
    pipeline = renderer.render(spec.pipeline, scope, variables, where="pipeline")
    windows: dict[str, int] = {}
    for key in ("lookback", "lookahead", "retain"):
        raw = getattr(spec, key)
        value = renderer.render(raw, scope, variables, where=key) if raw is not None else 0
        try:
            windows[key] = duration_seconds(value)
        except ValueError as exc:
            scope.errors.append(f"{key}: {exc}")
    scope.errors.extend(_retain_problems(spec, windows.get("retain", 0)))
    runs = _rendered_runs(spec, renderer, scope, variables, windows)
    if scope.errors:
        problems.extend(prefix + e for e in scope.errors)
        return None
    relations = set(renderer.relations.models.values()) | set(renderer.relations.sources.values())
    pipeline_problems = literal_relations(spec.pipeline) + check_pipeline(pipeline, relations)
    if pipeline_problems:
        problems.extend(prefix + p for p in pipeline_problems)
        return None
    depends_on = sorted(set(from_ids + [f"model.{r}" for r in scope.refs] +
                            [f"source.{s}.{t}" for s, t in scope.sources]))  # fmt: skip
    if f"model.{spec.name}" in depends_on:
        problems.append(prefix + "refs itself; a model cannot read its own output")
        return None
    compiled = expand_field_timezones(pipeline, [s.timezone for s in mp.project.config.stations])
    checksum_input = {
        "from": from_collection, "pipeline": compiled, "materialized": spec.materialized,
        "unique_key": spec.unique_key, "partition_by": spec.partition_by, "event_time": spec.event_time,
        # only a set retain enters the checksum: adding the key changed no other model's definition
        "windows": {k: v for k, v in windows.items() if k != "retain" or v},
    }  # fmt: skip
    checksum = hashlib.sha256(json.dumps(checksum_input, sort_keys=True, default=str).encode()).hexdigest()
    return ModelNode(f"model.{spec.name}", spec.name, display, spec, from_ids[0], depends_on, compiled, checksum,
                     windows["lookback"], windows["lookahead"], windows["retain"], runs)  # fmt: skip


def _rendered_runs(spec: ModelSpec, renderer: Renderer, scope: RenderScope, variables: Any,
                   windows: dict[str, int]) -> Runs | None:  # fmt: skip
    """``runs:`` with its templated lengths rendered; a problem goes to ``scope.errors``, among them a run that
    reaches further than ``lookback``/``lookahead`` (the batch would cut it there)."""
    if spec.runs is None:
        return None
    try:
        min_run = int(renderer.render(spec.runs.min_run, scope, variables, where="runs.min_run"))
        max_step = duration_seconds(
            renderer.render(spec.runs.max_step, scope, variables, where="runs.max_step")
        )
    except (TypeError, ValueError) as exc:
        scope.errors.append(f"runs: {exc}")
        return None
    reach = (min_run - 1) * max_step
    if min_run < 1 or max_step <= 0:
        scope.errors.append(
            f"runs: min_run must be at least 1 and max_step above 0 (got {min_run}, {max_step} s)"
        )
    elif reach > min(windows.get("lookback", 0), windows.get("lookahead", 0)):
        scope.errors.append(
            f"runs: a run shorter than min_run reaches (min_run - 1) x max_step = {reach / 3600:g} h, beyond "
            f"lookback/lookahead ({windows.get('lookback', 0) / 3600:g} h / {windows.get('lookahead', 0) / 3600:g} h)"
        )
    return Runs(tuple(spec.runs.fields), min_run, max_step, tuple(spec.runs.skip_if.items()))


def _retain_problems(spec: ModelSpec, retain_s: int) -> list[str]:
    """A published model that deletes old outputs must serve a window inside what it keeps (PostgreSQL would
    otherwise keep rows the model no longer has)."""
    if not retain_s or spec.publish is None:
        return []
    window = spec.publish.window
    if window is None or window.field != spec.event_time:
        return [
            f"retain: a published model that deletes old outputs needs publish.window on {spec.event_time}"
        ]
    if retain_s < window.days * 86400:
        return [f"retain: keeps less than the {window.days} days that publish.window serves"]
    return []


def _check_incremental_inputs(mp: ModelProject, problems: list[str]) -> None:
    """An incremental model tracks changes of its input: a source's loaded_at_field or a model's _updated_at."""
    for model in mp.models.values():
        if model.spec.materialized != "incremental":
            continue
        prefix = f"{model.path}: model '{model.name}': "
        if model.from_id in mp.sources and not mp.sources[model.from_id].spec.loaded_at_field:
            problems.append(prefix + f"incremental input {model.from_id} declares no loaded_at_field, so changes "
                            "cannot be tracked; add it to the source or use materialized: table")  # fmt: skip
        elif model.from_id in mp.models and mp.models[model.from_id].spec.materialized == "view":
            problems.append(prefix + f"incremental input {model.from_id} is a view, whose changes cannot be "
                            "tracked; materialize it as table/incremental or this model as table")  # fmt: skip


def _add_tests(mp: ModelProject, built: tuple[list[TestNode], list[str]], problems: list[str]) -> None:
    nodes, errors = built
    problems.extend(errors)
    for node in nodes:
        uid, n = node.unique_id, 2
        while uid in mp.tests:
            uid, n = f"{node.unique_id}_{n}", n + 1
        node.unique_id, node.name = uid, uid.split(".", 1)[1]
        mp.tests[uid] = node
