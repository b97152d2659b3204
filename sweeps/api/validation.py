"""Validation of Training Monitor API payloads: one function per request body.

Every function takes the decoded JSON and returns a normalised dict, or raises
``ApiError(400, ...)`` whose message starts with the offending field
(``parameters[1].bounds.min: ...``). Nothing outside this module trusts a payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_NAME = 100
MAX_PARAMETERS = 100
MAX_METRICS = 10
MAX_CRITERIA = 3
MAX_CHECKPOINTS = 200
MAX_METADATA = 100
MAX_CHECKPOINT_METADATA = 4
MAX_STRING = 500
MAX_BUDGET = 1_000_000
MAX_BANDWIDTH = 1000
PARAMETER_TYPES = ("double", "int", "categorical")
OBJECTIVES = ("minimize", "maximize")
STRATEGIES = ("optimize", "store")
CRITERION_TYPES = ("convergence", "early_ranking")
DEFAULT_EARLY_RANKING_MARGIN = 0.1


class ApiError(Exception):
    """An error answered as ``{"message": ..., "status": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}" if field else message)


# --- primitives ----------------------------------------------------------------------


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(field or "body", "must be a JSON object")
    return value


def only_keys(value: Mapping[str, Any], allowed: set[str] | tuple[str, ...], prefix: str) -> None:
    for key in value:
        if key not in allowed:
            raise bad(_join(prefix, str(key)), "unknown field")


def string(value: Any, field: str, *, max_len: int = MAX_STRING, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise bad(field, "must be a string")
    if not allow_empty and not value.strip():
        raise bad(field, "must not be empty")
    if len(value) > max_len:
        raise bad(field, f"must be at most {max_len} characters")
    if "\x00" in value:
        raise bad(field, "must not contain NUL characters")
    return value


def integer(value: Any, field: str, *, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool):
        raise bad(field, "must be an integer")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise bad(field, "must be an integer")
    if lo is not None and value < lo:
        raise bad(field, f"must be at least {lo}")
    if hi is not None and value > hi:
        raise bad(field, f"must be at most {hi}")
    return value


def number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(field, "must be a number")
    try:
        out = float(value)
    except OverflowError:
        raise bad(field, "must be a finite number") from None
    if not math.isfinite(out) or abs(out) > 1e300:
        raise bad(field, "must be a finite number")
    return out


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad(field, "must be true or false")
    return value


def metadata(value: Any, field: str, *, max_entries: int = MAX_METADATA) -> dict[str, Any]:
    """SigOpt metadata: a flat object of string keys to strings, numbers or null."""
    if value is None:
        return {}
    value = obj(value, field)
    if len(value) > max_entries:
        raise bad(field, f"must have at most {max_entries} entries")
    out: dict[str, Any] = {}
    for key, item in value.items():
        sub = f"{field}.{key}"
        string(key, sub, max_len=MAX_NAME)
        if item is None or isinstance(item, str):
            out[key] = None if item is None else string(item, sub, allow_empty=True)
        else:
            out[key] = number(item, sub)
            if isinstance(item, int) and not isinstance(item, bool):
                out[key] = item if abs(item) < 2**53 else out[key]
    return out


def optional_metadata(body: Mapping[str, Any], key: str, max_entries: int = MAX_METADATA):
    return metadata(body.get(key), key, max_entries=max_entries)


# --- experiments ---------------------------------------------------------------------

EXPERIMENT_KEYS = {
    "name",
    "type",
    "parameters",
    "metrics",
    "metric",
    "observation_budget",
    "parallel_bandwidth",
    "metadata",
    "training_monitor",
    "project",
    "development",
    "num_solutions",
}


def experiment_create(body: Any) -> dict[str, Any]:
    """Validate a SigOpt experiment body; returns the normalised ``spec``."""
    body = obj(body, "")
    only_keys(body, EXPERIMENT_KEYS, "")
    if "name" not in body:
        raise bad("name", "is required")
    spec: dict[str, Any] = {
        "name": string(body["name"], "name", max_len=MAX_NAME),
        "type": "offline",
        "metadata": optional_metadata(body, "metadata"),
    }
    kind = body.get("type", "offline")
    if kind != "offline":
        raise bad("type", 'only "offline" experiments are supported')
    if body.get("development") not in (None, False):
        raise bad("development", "development experiments are not supported")
    if body.get("num_solutions") not in (None, 1):
        raise bad("num_solutions", "only 1 is supported")
    spec["parameters"] = parameters(body.get("parameters"))
    if "metrics" in body and "metric" in body:
        raise bad("metric", "give either metric or metrics")
    raw_metrics = body.get("metrics")
    if "metric" in body:
        raw_metrics = [body["metric"]]
    spec["metrics"] = metrics(raw_metrics)
    spec["observation_budget"] = (
        None
        if body.get("observation_budget") is None
        else integer(body["observation_budget"], "observation_budget", lo=1, hi=MAX_BUDGET)
    )
    spec["parallel_bandwidth"] = (
        1
        if body.get("parallel_bandwidth") is None
        else integer(body["parallel_bandwidth"], "parallel_bandwidth", lo=1, hi=MAX_BANDWIDTH)
    )
    spec["training_monitor"] = (
        None
        if body.get("training_monitor") is None
        else training_monitor(body["training_monitor"], spec["metrics"])
    )
    if body.get("project") is not None:
        spec["project"] = string(body["project"], "project", max_len=64)
    return spec


def parameters(value: Any) -> list[dict[str, Any]]:
    if value is None:
        raise bad("parameters", "is required")
    if not isinstance(value, list) or not value:
        raise bad("parameters", "must be a non-empty list")
    if len(value) > MAX_PARAMETERS:
        raise bad("parameters", f"must have at most {MAX_PARAMETERS} entries")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, raw in enumerate(value):
        field = f"parameters[{i}]"
        p = obj(raw, field)
        only_keys(
            p,
            {"name", "type", "bounds", "categorical_values", "transformation", "default_value"},
            field,
        )
        if "name" not in p:
            raise bad(f"{field}.name", "is required")
        name = string(p["name"], f"{field}.name", max_len=MAX_NAME)
        if name in names:
            raise bad(f"{field}.name", f"duplicate parameter name {name!r}")
        names.add(name)
        kind = p.get("type")
        if kind not in PARAMETER_TYPES:
            raise bad(f"{field}.type", f"must be one of {', '.join(PARAMETER_TYPES)}")
        item: dict[str, Any] = {"name": name, "type": kind}
        transformation = p.get("transformation")
        if transformation not in (None, "none", "log"):
            raise bad(f"{field}.transformation", 'must be "log" or "none"')
        if kind == "categorical":
            if "bounds" in p:
                raise bad(f"{field}.bounds", "categorical parameters take categorical_values")
            if transformation == "log":
                raise bad(f"{field}.transformation", "log needs a double or int parameter")
            item["categorical_values"] = categorical_values(
                p.get("categorical_values"), f"{field}.categorical_values"
            )
        else:
            if "categorical_values" in p:
                raise bad(f"{field}.categorical_values", "only for categorical parameters")
            bounds = obj(p.get("bounds"), f"{field}.bounds")
            only_keys(bounds, {"min", "max"}, f"{field}.bounds")
            for key in ("min", "max"):
                if key not in bounds:
                    raise bad(f"{field}.bounds.{key}", "is required")
            conv = number if kind == "double" else integer
            lo = conv(bounds["min"], f"{field}.bounds.min")
            hi = conv(bounds["max"], f"{field}.bounds.max")
            if not lo < hi:
                raise bad(f"{field}.bounds", "min must be less than max")
            if kind == "int" and (abs(lo) > 2**53 or abs(hi) > 2**53):
                raise bad(f"{field}.bounds", "must be within ±2**53")
            if transformation == "log" and lo <= 0:
                raise bad(f"{field}.bounds.min", "must be positive with a log transformation")
            item["bounds"] = {"min": lo, "max": hi}
            item["transformation"] = "log" if transformation == "log" else "none"
        if p.get("default_value") is not None:
            item["default_value"] = assignment(item, p["default_value"], f"{field}.default_value")
        out.append(item)
    return out


def categorical_values(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) < 2:
        raise bad(field, "must be a list of at least 2 values")
    if len(value) > MAX_PARAMETERS:
        raise bad(field, f"must have at most {MAX_PARAMETERS} values")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(value):
        sub = f"{field}[{i}]"
        if isinstance(raw, dict):
            only_keys(raw, {"name", "enum_index"}, sub)
            name = string(raw.get("name"), f"{sub}.name", max_len=MAX_NAME)
        else:
            name = string(raw, sub, max_len=MAX_NAME)
        if name in seen:
            raise bad(sub, f"duplicate value {name!r}")
        seen.add(name)
        out.append({"name": name, "enum_index": i + 1})
    return out


def metrics(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return [{"name": "value", "objective": "maximize", "strategy": "optimize"}]
    if not isinstance(value, list) or not value:
        raise bad("metrics", "must be a non-empty list")
    if len(value) > MAX_METRICS:
        raise bad("metrics", f"must have at most {MAX_METRICS} entries")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, raw in enumerate(value):
        field = f"metrics[{i}]"
        m = obj(raw, field)
        only_keys(m, {"name", "objective", "strategy", "threshold"}, field)
        if "name" not in m:
            raise bad(f"{field}.name", "is required")
        name = string(m["name"], f"{field}.name", max_len=MAX_NAME)
        if name in names:
            raise bad(f"{field}.name", f"duplicate metric name {name!r}")
        names.add(name)
        objective = m.get("objective", "maximize")
        if objective not in OBJECTIVES:
            raise bad(f"{field}.objective", 'must be "minimize" or "maximize"')
        strategy = m.get("strategy", "optimize")
        if strategy not in STRATEGIES:
            raise bad(f"{field}.strategy", 'must be "optimize" or "store"')
        if m.get("threshold") is not None:
            raise bad(f"{field}.threshold", "metric thresholds are not supported")
        out.append({"name": name, "objective": objective, "strategy": strategy})
    optimized = [m for m in out if m["strategy"] == "optimize"]
    if len(optimized) != 1:
        raise bad("metrics", 'exactly one metric must have strategy "optimize"')
    return out


def training_monitor(value: Any, experiment_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    field = "training_monitor"
    tm = obj(value, field)
    only_keys(tm, {"max_checkpoints", "early_stopping_criteria"}, field)
    if tm.get("max_checkpoints") is None:
        raise bad(f"{field}.max_checkpoints", "is required with a training monitor")
    max_checkpoints = integer(
        tm["max_checkpoints"], f"{field}.max_checkpoints", lo=1, hi=MAX_CHECKPOINTS
    )
    raw = tm.get("early_stopping_criteria")
    raw = [] if raw is None else raw  # 0, "" or {} are mistakes, not "no criteria"
    if not isinstance(raw, list):
        raise bad(f"{field}.early_stopping_criteria", "must be a list")
    if len(raw) > MAX_CRITERIA:
        raise bad(f"{field}.early_stopping_criteria", f"must have at most {MAX_CRITERIA} entries")
    by_name = {m["name"]: m for m in experiment_metrics}
    default_metric = next(m["name"] for m in experiment_metrics if m["strategy"] == "optimize")
    criteria: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, c in enumerate(raw):
        sub = f"{field}.early_stopping_criteria[{i}]"
        c = obj(c, sub)
        only_keys(
            c, {"type", "name", "metric", "lookback_checkpoints", "min_checkpoints", "margin"}, sub
        )
        kind = c.get("type")
        if kind not in CRITERION_TYPES:
            raise bad(f"{sub}.type", f"must be one of {', '.join(CRITERION_TYPES)}")
        name = string(c.get("name", kind), f"{sub}.name", max_len=MAX_NAME)
        if name in names:
            raise bad(f"{sub}.name", f"duplicate criterion name {name!r}")
        names.add(name)
        metric = string(c.get("metric", default_metric), f"{sub}.metric", max_len=MAX_NAME)
        if metric not in by_name:
            raise bad(f"{sub}.metric", f"{metric!r} is not one of the experiment's metrics")
        lookback = integer(
            c.get("lookback_checkpoints", 1),
            f"{sub}.lookback_checkpoints",
            lo=1,
            hi=max_checkpoints,
        )
        min_checkpoints = integer(
            c.get("min_checkpoints", 1), f"{sub}.min_checkpoints", lo=1, hi=max_checkpoints
        )
        criterion: dict[str, Any] = {
            "type": kind,
            "name": name,
            "metric": metric,
            "lookback_checkpoints": lookback,
            "min_checkpoints": min_checkpoints,
        }
        if kind == "early_ranking":
            if by_name[metric]["objective"] != "minimize":
                raise bad(
                    f"{sub}.metric",
                    "early_ranking needs a minimised metric (a loss or error rate)",
                )
            margin = number(c.get("margin", DEFAULT_EARLY_RANKING_MARGIN), f"{sub}.margin")
            if not 0 <= margin <= 10:
                raise bad(f"{sub}.margin", "must be between 0 and 10")
            criterion["margin"] = margin
        elif "margin" in c:
            raise bad(f"{sub}.margin", "only for early_ranking criteria")
        criteria.append(criterion)
    return {"max_checkpoints": max_checkpoints, "early_stopping_criteria": criteria}


def experiment_update(body: Any) -> dict[str, Any]:
    """Fields that may change after creation: name, metadata, observation_budget."""
    body = obj(body, "")
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "name":
            changes["name"] = string(value, "name", max_len=MAX_NAME)
        elif key == "metadata":
            changes["metadata"] = metadata(value, "metadata")
        elif key == "observation_budget":
            changes["observation_budget"] = (
                None if value is None else integer(value, "observation_budget", lo=1, hi=MAX_BUDGET)
            )
        elif key in EXPERIMENT_KEYS or key in {"id", "state"}:
            raise bad(str(key), "cannot be updated (only name, metadata, observation_budget)")
        else:
            raise bad(str(key), "unknown field")
    return changes


# --- suggestions, training runs, checkpoints, observations ---------------------------


def assignment(param: Mapping[str, Any], value: Any, field: str) -> Any:
    if param["type"] == "categorical":
        names = [v["name"] for v in param["categorical_values"]]
        if value not in names:
            raise bad(field, f"must be one of {names}")
        return value
    conv = number if param["type"] == "double" else integer
    out = conv(value, field)
    if not param["bounds"]["min"] <= out <= param["bounds"]["max"]:
        raise bad(field, f"must be within [{param['bounds']['min']}, {param['bounds']['max']}]")
    return out


def suggestion_create(body: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    body = obj(body if body is not None else {}, "")
    only_keys(body, {"assignments", "metadata"}, "")
    out: dict[str, Any] = {"metadata": optional_metadata(body, "metadata")}
    if body.get("assignments") is not None:
        raw = obj(body["assignments"], "assignments")
        by_name = {p["name"]: p for p in spec["parameters"]}
        for key in raw:
            if key not in by_name:
                raise bad(f"assignments.{key}", "is not a parameter of the experiment")
        assignments = {}
        for name, param in by_name.items():
            if name not in raw:
                raise bad(f"assignments.{name}", "is required")
            assignments[name] = assignment(param, raw[name], f"assignments.{name}")
        out["assignments"] = assignments
    return out


def training_run_create(body: Any) -> dict[str, Any]:
    body = obj(body if body is not None else {}, "")
    only_keys(body, {"suggestion", "name", "metadata"}, "")
    if body.get("suggestion") is None:
        raise bad("suggestion", "is required (one training run per suggestion)")
    return {
        "suggestion": string(body["suggestion"], "suggestion", max_len=20),
        "name": string(body["name"], "name", max_len=MAX_NAME) if body.get("name") else "",
        "metadata": optional_metadata(body, "metadata"),
    }


def metric_values(value: Any, field: str, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = {m["name"] for m in spec["metrics"]}
    if not isinstance(value, list) or not value:
        raise bad(field, "must be a non-empty list of {name, value}")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(value):
        sub = f"{field}[{i}]"
        v = obj(raw, sub)
        only_keys(v, {"name", "value", "value_stddev"}, sub)
        if len(names) == 1 and v.get("name") is None:
            name = next(iter(names))
        else:
            name = string(v.get("name"), f"{sub}.name", max_len=MAX_NAME)
        if name not in names:
            raise bad(f"{sub}.name", f"{name!r} is not one of the experiment's metrics")
        if name in seen:
            raise bad(f"{sub}.name", f"duplicate metric {name!r}")
        seen.add(name)
        if "value" not in v:
            raise bad(f"{sub}.value", "is required")
        item = {"name": name, "value": number(v["value"], f"{sub}.value"), "value_stddev": None}
        if v.get("value_stddev") is not None:
            stddev = number(v["value_stddev"], f"{sub}.value_stddev")
            if stddev < 0:
                raise bad(f"{sub}.value_stddev", "must not be negative")
            item["value_stddev"] = stddev
        out.append(item)
    return out


def checkpoint_create(body: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    body = obj(body, "")
    only_keys(body, {"values", "metadata"}, "")
    if "values" not in body:
        raise bad("values", "is required")
    return {
        "values": metric_values(body["values"], "values", spec),
        "metadata": optional_metadata(body, "metadata", MAX_CHECKPOINT_METADATA),
    }


def observation_create(body: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    body = obj(body, "")
    only_keys(
        body,
        {"suggestion", "training_run", "value", "value_stddev", "values", "failed", "metadata"},
        "",
    )
    out: dict[str, Any] = {
        "failed": False if body.get("failed") is None else boolean(body["failed"], "failed"),
        "metadata": optional_metadata(body, "metadata"),
        "suggestion": None,
        "training_run": None,
        "values": None,
    }
    if body.get("suggestion") is None and body.get("training_run") is None:
        raise bad("suggestion", "is required (or training_run)")
    for key in ("suggestion", "training_run"):
        if body.get(key) is not None:
            out[key] = string(body[key], key, max_len=20)
    has_value = body.get("value") is not None or body.get("values") is not None
    if out["failed"] and has_value:
        raise bad("failed", "a failed observation takes no value")
    if body.get("value") is not None and body.get("values") is not None:
        raise bad("value", "give either value or values")
    if body.get("value") is not None:
        optimized = [m for m in spec["metrics"] if m["strategy"] == "optimize"]
        if len(spec["metrics"]) > 1:
            raise bad("value", "this experiment has several metrics: use values")
        item = {
            "name": optimized[0]["name"],
            "value": number(body["value"], "value"),
            "value_stddev": None,
        }
        if body.get("value_stddev") is not None:
            item["value_stddev"] = number(body["value_stddev"], "value_stddev")
            if item["value_stddev"] < 0:
                raise bad("value_stddev", "must not be negative")
        out["values"] = [item]
    elif body.get("value_stddev") is not None:
        raise bad("value_stddev", "only with value")
    elif body.get("values") is not None:
        out["values"] = metric_values(body["values"], "values", spec)
        optimized = next(m["name"] for m in spec["metrics"] if m["strategy"] == "optimize")
        if optimized not in {v["name"] for v in out["values"]}:
            raise bad("values", f"must include the optimised metric {optimized!r}")
    return out


def page_params(query: Mapping[str, str]) -> dict[str, Any]:
    """``limit`` (1..1000, default 100), ``before``/``after`` cursors (ids)."""
    out: dict[str, Any] = {"limit": 100, "before": None, "after": None}
    for key, value in query.items():
        if key == "limit":
            if not (value.isascii() and value.isdigit()) or len(value) > 6:
                raise bad("limit", "must be an integer between 1 and 1000")
            out["limit"] = integer(int(value), "limit", lo=1, hi=1000)
        elif key in ("before", "after"):
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise bad(key, "must be an id")
            out[key] = int(value)
        elif key in ("state", "sort", "fields"):
            continue
        else:
            raise bad(key, "unknown query parameter")
    if out["before"] is not None and out["after"] is not None:
        raise bad("before", "give either before or after")
    return out
