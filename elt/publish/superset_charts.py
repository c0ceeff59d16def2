"""The chart half of the Superset bundle: saved queries derived from chart params, and reference checks.

Superset's chart data API (``GET /api/v1/chart/<id>/data/``), reports and thumbnails run a chart's saved
``query_context``; the browser builds its own from the params. Exported YAML usually carries a query context
written by the browser; here it is derived from the params so the YAML stays short and cannot disagree.
"""

from __future__ import annotations

import json
from typing import Any

from elt.errors import ConfigError

BUNDLE_VERSION = "1.0.0"
TIMESERIES_VIZ = (
    "echarts_timeseries_line",
    "echarts_timeseries_bar",
    "echarts_area",
    "echarts_timeseries_scatter",
)
#: Viz types whose query this module knows how to derive (all exist in Superset 6.1).
SUPPORTED_VIZ = (*TIMESERIES_VIZ, "heatmap_v2", "table", "pie", "big_number_total")


def _filters(adhoc_filters: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    filters, where = [], []
    for adhoc in adhoc_filters:
        if adhoc.get("expressionType") == "SQL":
            where.append(f"({adhoc['sqlExpression']})")
            continue
        item = {"col": adhoc["subject"], "op": adhoc["operator"]}
        if "comparator" in adhoc:
            item["val"] = adhoc["comparator"]
        filters.append(item)
    return filters, " AND ".join(where)


def query_context(viz_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """A chart's saved query (what ``GET /api/v1/chart/<id>/data/`` runs), derived from its params.

    No post-processing: the API returns plain grouped rows (one per x value and series), easy to check.
    """
    filters, where = _filters(params.get("adhoc_filters", []))
    groupby = params.get("groupby") or []
    groupby = [groupby] if isinstance(groupby, str) else list(groupby)
    metrics = list(params.get("metrics") or ([params["metric"]] if params.get("metric") else []))
    query: dict[str, Any] = {
        "filters": filters,
        "extras": {"having": "", "where": where},
        "applied_time_extras": {},
        "columns": [],
        "metrics": metrics,
        "orderby": [],
        "annotation_layers": [],
        "row_limit": params.get("row_limit", 10000),
        "series_limit": 0,
        "order_desc": True,
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    if viz_type in TIMESERIES_VIZ or viz_type == "heatmap_v2":
        axis = {
            "timeGrain": params.get("time_grain_sqla"),
            "columnType": "BASE_AXIS",
            "sqlExpression": params["x_axis"],
            "label": params["x_axis"],
            "expressionType": "SQL",
        }
        query["columns"] = [axis, *groupby]
        query["extras"]["time_grain_sqla"] = params.get("time_grain_sqla")
        query["orderby"] = [[params["x_axis"], True]] if viz_type == "heatmap_v2" else [[metrics[0], False]]
        if viz_type in TIMESERIES_VIZ:
            query["series_columns"] = groupby
    elif viz_type == "table" and params.get("query_mode") == "raw":
        query["columns"] = list(params["all_columns"])
        query["orderby"] = [json.loads(item) for item in params.get("order_by_cols", [])]
    else:
        query["columns"] = groupby
        query["orderby"] = [[metrics[0], False]] if metrics and viz_type == "pie" else []
    return {
        "datasource": {"id": 0, "type": "table"},
        "force": False,
        "queries": [query],
        "form_data": {**params, "viz_type": viz_type},
        "result_format": "json",
        "result_type": "full",
    }


def chart_config(chart: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
    """The bundle file of one chart."""
    params = {**chart["params"], "viz_type": chart["viz_type"], "datasource": "0__table"}
    return {
        "slice_name": chart["slice_name"],
        "description": chart.get("description"),
        "viz_type": chart["viz_type"],
        "params": params,
        "query_context": json.dumps(query_context(chart["viz_type"], params)),
        "cache_timeout": None,
        "uuid": chart["uuid"],
        "version": BUNDLE_VERSION,
        "dataset_uuid": dataset["uuid"],
    }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str | dict) else list(value)


def check_chart_references(chart: dict[str, Any], dataset: dict[str, Any]) -> None:
    """Fail early (ConfigError naming the chart file) when params name a column or metric the dataset lacks."""
    params = chart["params"]
    columns = {c["column_name"] for c in dataset["columns"]}
    metrics = {m["metric_name"] for m in dataset["metrics"]}
    wanted_columns = [
        *_as_list(params.get("x_axis")),
        *_as_list(params.get("groupby")),
        *_as_list(params.get("all_columns")),
        *[f["subject"] for f in params.get("adhoc_filters", []) if f.get("expressionType") == "SIMPLE"],
        *[json.loads(item)[0] for item in params.get("order_by_cols", [])],
    ]
    wanted_metrics = [
        m for m in [*_as_list(params.get("metrics")), *_as_list(params.get("metric"))] if isinstance(m, str)
    ]
    unknown = sorted({c for c in wanted_columns if isinstance(c, str) and c not in columns})
    unknown += sorted({m for m in wanted_metrics if m not in metrics})
    if unknown:
        raise ConfigError(
            f"{chart['_path']}: {', '.join(unknown)} not in dataset {dataset['table_name']} "
            f"(columns: {', '.join(sorted(columns))}; metrics: {', '.join(sorted(metrics))})"
        )
