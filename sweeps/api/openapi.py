"""The OpenAPI 3.0 description of the Training Monitor API, served at ``/v1/openapi.json``.

Written by hand next to ``validation.py`` (which is the authority: the schema describes it,
and the fuzz test in ``tests/api/test_fuzz.py`` checks the two against each other).
"""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "pattern": "^[0-9]{1,18}$"}
NAME = {"type": "string", "minLength": 1, "maxLength": 100}
NUMBER = {"type": "number", "minimum": -1e300, "maximum": 1e300}
METADATA = {
    "type": "object",
    "maxProperties": 100,
    "additionalProperties": {
        "oneOf": [{"type": "string", "maxLength": 500}, NUMBER, {"type": "null"}]
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["object", "count", "data", "paging"],
        "properties": {
            "object": {"type": "string", "enum": ["pagination"]},
            "count": {"type": "integer"},
            "data": {"type": "array", "items": _ref(item)},
            "paging": {
                "type": "object",
                "properties": {
                    "before": {"type": "string", "nullable": True},
                    "after": {"type": "string", "nullable": True},
                },
            },
        },
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message", "status"],
        "properties": {"message": {"type": "string"}, "status": {"type": "integer"}},
    },
    "Parameter": {
        "type": "object",
        "required": ["name", "type"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "type": {"type": "string", "enum": ["double", "int", "categorical"]},
            "bounds": {
                "type": "object",
                "required": ["min", "max"],
                "additionalProperties": False,
                "properties": {"min": NUMBER, "max": NUMBER},
            },
            "categorical_values": {
                "type": "array",
                "minItems": 2,
                "maxItems": 100,
                "items": {
                    "oneOf": [
                        NAME,
                        {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": NAME, "enum_index": {"type": "integer"}},
                        },
                    ]
                },
            },
            "transformation": {"type": "string", "enum": ["none", "log"]},
            "default_value": {},
        },
    },
    "Metric": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "objective": {"type": "string", "enum": ["minimize", "maximize"]},
            "strategy": {"type": "string", "enum": ["optimize", "store"]},
        },
    },
    "StoppingCriterion": {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "description": "convergence: no improvement in the last lookback_checkpoints over the "
        "best before them (after min_checkpoints). early_ranking: at each of the last "
        "lookback_checkpoints checkpoints k, the run's Early Ranking score exceeds b_k by "
        "margin*|b_k|, where b_k is the best score the finished runs had at their k-th "
        "checkpoint.",
        "properties": {
            "type": {"type": "string", "enum": ["convergence", "early_ranking"]},
            "name": NAME,
            "metric": NAME,
            "lookback_checkpoints": {"type": "integer", "minimum": 1, "maximum": 200},
            "min_checkpoints": {"type": "integer", "minimum": 1, "maximum": 200},
            "margin": {"type": "number", "minimum": 0, "maximum": 10},
        },
    },
    "TrainingMonitor": {
        "type": "object",
        "required": ["max_checkpoints"],
        "additionalProperties": False,
        "properties": {
            "max_checkpoints": {"type": "integer", "minimum": 1, "maximum": 200},
            "early_stopping_criteria": {
                "type": "array",
                "maxItems": 3,
                "items": _ref("StoppingCriterion"),
            },
        },
    },
    "ExperimentCreate": {
        "type": "object",
        "required": ["name", "parameters"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "type": {"type": "string", "enum": ["offline"]},
            "parameters": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": _ref("Parameter"),
            },
            "metrics": {"type": "array", "minItems": 1, "maxItems": 10, "items": _ref("Metric")},
            "observation_budget": {"type": "integer", "minimum": 1, "maximum": 1000000},
            "parallel_bandwidth": {"type": "integer", "minimum": 1, "maximum": 1000},
            "metadata": METADATA,
            "training_monitor": _ref("TrainingMonitor"),
            "project": {
                "type": "string",
                "maxLength": 64,
                "description": "Slug of a Luminide project you can access; default: your "
                "own '<username>-api' project, created on first use.",
            },
        },
    },
    "ExperimentUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "metadata": METADATA,
            "observation_budget": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000000,
                "nullable": True,
            },
        },
    },
    "Experiment": {
        "type": "object",
        "required": ["object", "id", "name", "parameters", "metrics"],
        "properties": {
            "object": {"type": "string", "enum": ["experiment"]},
            "id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "state": {"type": "string"},
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "parameters": {"type": "array", "items": {"type": "object"}},
            "metrics": {"type": "array", "items": {"type": "object"}},
            "observation_budget": {"type": "integer", "nullable": True},
            "parallel_bandwidth": {"type": "integer"},
            "metadata": {"type": "object"},
            "progress": {"type": "object", "nullable": True},
            "training_monitor": {"type": "object", "nullable": True},
            "project": {"type": "string"},
        },
    },
    "SuggestionCreate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"metadata": METADATA, "assignments": {"type": "object"}},
    },
    "Suggestion": {
        "type": "object",
        "required": ["object", "id", "experiment", "assignments", "state"],
        "properties": {
            "object": {"type": "string", "enum": ["suggestion"]},
            "id": {"type": "string"},
            "experiment": {"type": "string"},
            "assignments": {"type": "object"},
            "state": {"type": "string", "enum": ["open", "closed"]},
            "created": {"type": "integer"},
            "metadata": {"type": "object"},
        },
    },
    "TrainingRunCreate": {
        "type": "object",
        "required": ["suggestion"],
        "additionalProperties": False,
        "properties": {"suggestion": ID, "name": NAME, "metadata": METADATA},
    },
    "TrainingRun": {
        "type": "object",
        "required": ["object", "id", "checkpoint_count", "finished"],
        "properties": {
            "object": {"type": "string", "enum": ["training_run"]},
            "id": {"type": "string"},
            "experiment": {"type": "string"},
            "suggestion": {"type": "string"},
            "checkpoint_count": {"type": "integer"},
            "best_checkpoint": {"type": "string", "nullable": True},
            "observation": {"type": "string", "nullable": True},
            "finished": {"type": "boolean"},
        },
    },
    "MetricValue": {
        "type": "object",
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "value": NUMBER,
            "value_stddev": {"type": "number", "minimum": 0, "maximum": 1e300},
        },
    },
    "CheckpointCreate": {
        "type": "object",
        "required": ["values"],
        "additionalProperties": False,
        "properties": {
            "values": {"type": "array", "minItems": 1, "items": _ref("MetricValue")},
            "metadata": {**METADATA, "maxProperties": 4},
        },
    },
    "Checkpoint": {
        "type": "object",
        "required": ["object", "id", "training_run", "values", "should_stop", "stopping_reasons"],
        "properties": {
            "object": {"type": "string", "enum": ["checkpoint"]},
            "id": {"type": "string"},
            "training_run": {"type": "string"},
            "created": {"type": "integer"},
            "values": {"type": "array", "items": {"type": "object"}},
            "metadata": {"type": "object"},
            "should_stop": {"type": "boolean"},
            "stopping_reasons": {"type": "object", "additionalProperties": {"type": "boolean"}},
        },
    },
    "ObservationCreate": {
        "type": "object",
        "additionalProperties": False,
        "description": "suggestion or training_run is required. value (or values), or "
        "failed: true; with a training run and neither, the best checkpoint's values.",
        "properties": {
            "suggestion": ID,
            "training_run": ID,
            "value": NUMBER,
            "value_stddev": {"type": "number", "minimum": 0, "maximum": 1e300},
            "values": {"type": "array", "minItems": 1, "items": _ref("MetricValue")},
            "failed": {"type": "boolean"},
            "metadata": METADATA,
        },
    },
    "Observation": {
        "type": "object",
        "required": ["object", "id", "suggestion", "failed"],
        "properties": {
            "object": {"type": "string", "enum": ["observation"]},
            "id": {"type": "string"},
            "experiment": {"type": "string"},
            "suggestion": {"type": "string"},
            "training_run": {"type": "string", "nullable": True},
            "failed": {"type": "boolean"},
            "value": {"type": "number", "nullable": True},
            "values": {"type": "array", "items": {"type": "object"}},
        },
    },
}

ERRORS = {
    code: {
        "description": text,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    for code, text in {
        "400": "Invalid payload; the message names the field",
        "401": "Missing, invalid or revoked token",
        "403": "Not allowed now (max_checkpoints reached, run already observed)",
        "404": "No such object (or not yours)",
        "405": "Method not allowed",
        "409": "Your API project could not be created (pass an existing project)",
        "413": "Request body too large",
        "429": "The database stayed busy (SQLite lock timeout); retry after Retry-After seconds",
    }.items()
}

PAGE_PARAMS = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    {"name": "before", "in": "query", "schema": ID},
    {"name": "after", "in": "query", "schema": ID},
]


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def _op(
    summary: str,
    ok_status: str,
    response: str | None,
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    page: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ERRORS)
    if response is None:
        responses[ok_status] = {"description": "Done"}
    else:
        schema = _page(response) if page else _ref(response)
        responses[ok_status] = {
            "description": "OK",
            "content": {"application/json": {"schema": schema}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    parameters = list(params or []) + (PAGE_PARAMS if page else [])
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


def schema(server: str = "/") -> dict[str, Any]:
    e, r, s, c, o = (
        _path_param("experiment_id"),
        _path_param("run_id"),
        _path_param("suggestion_id"),
        _path_param("checkpoint_id"),
        _path_param("observation_id"),
    )
    paths = {
        "/v1/experiments": {
            "post": _op("Create an experiment", "201", "Experiment", body="ExperimentCreate"),
            "get": _op("List your experiments", "200", "Experiment", page=True),
        },
        "/v1/experiments/{experiment_id}": {
            "get": _op("Fetch an experiment", "200", "Experiment", params=[e]),
            "put": _op(
                "Update name, metadata, observation_budget",
                "200",
                "Experiment",
                body="ExperimentUpdate",
                params=[e],
            ),
            "delete": _op("Delete an experiment", "204", None, params=[e]),
        },
        "/v1/experiments/{experiment_id}/suggestions": {
            "post": _op(
                "Create a suggestion (Optuna TPE ask)",
                "201",
                "Suggestion",
                body="SuggestionCreate",
                params=[e],
            ),
            "get": _op(
                "List suggestions",
                "200",
                "Suggestion",
                params=[
                    e,
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["open", "closed", "all"]},
                    },
                ],
                page=True,
            ),
        },
        "/v1/experiments/{experiment_id}/suggestions/{suggestion_id}": {
            "get": _op("Fetch a suggestion", "200", "Suggestion", params=[e, s]),
        },
        "/v1/experiments/{experiment_id}/training_runs": {
            "post": _op(
                "Create the training run of a suggestion",
                "201",
                "TrainingRun",
                body="TrainingRunCreate",
                params=[e],
            ),
            "get": _op("List training runs", "200", "TrainingRun", params=[e], page=True),
        },
        "/v1/experiments/{experiment_id}/training_runs/{run_id}": {
            "get": _op("Fetch a training run", "200", "TrainingRun", params=[e, r]),
        },
        "/v1/experiments/{experiment_id}/training_runs/{run_id}/checkpoints": {
            "post": _op(
                "Report a checkpoint; answers should_stop and stopping_reasons",
                "201",
                "Checkpoint",
                body="CheckpointCreate",
                params=[e, r],
            ),
            "get": _op("List checkpoints", "200", "Checkpoint", params=[e, r], page=True),
        },
        "/v1/experiments/{experiment_id}/training_runs/{run_id}/checkpoints/{checkpoint_id}": {
            "get": _op("Fetch a checkpoint", "200", "Checkpoint", params=[e, r, c]),
        },
        "/v1/training_runs/{run_id}": {
            "get": _op("Fetch a training run", "200", "TrainingRun", params=[r]),
        },
        "/v1/training_runs/{run_id}/checkpoints": {
            "post": _op(
                "Report a checkpoint",
                "201",
                "Checkpoint",
                body="CheckpointCreate",
                params=[r],
            ),
            "get": _op("List checkpoints", "200", "Checkpoint", params=[r], page=True),
        },
        "/v1/training_runs/{run_id}/checkpoints/{checkpoint_id}": {
            "get": _op("Fetch a checkpoint", "200", "Checkpoint", params=[r, c]),
        },
        "/v1/experiments/{experiment_id}/observations": {
            "post": _op(
                "Create an observation (closes the suggestion, tells the study)",
                "201",
                "Observation",
                body="ObservationCreate",
                params=[e],
            ),
            "get": _op("List observations", "200", "Observation", params=[e], page=True),
        },
        "/v1/experiments/{experiment_id}/observations/{observation_id}": {
            "get": _op("Fetch an observation", "200", "Observation", params=[e, o]),
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Luminide Training Monitor API",
            "version": "1",
            "description": "SigOpt-compatible (official sigopt Python client). The API token "
            "is the HTTP Basic username, with an empty password.",
        },
        "servers": [{"url": server.rstrip("/") or "/"}],
        "security": [{"token": []}],
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "basic"}},
            "schemas": SCHEMAS,
        },
        "paths": paths,
    }
