"""JSON shapes of the Training Monitor API objects (SigOpt's field names, ids as strings,
timestamps as integer seconds)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Count, Q, QuerySet

from sweeps.models import Checkpoint, Experiment, RunState, Trial


def ts(dt) -> int | None:
    return int(dt.timestamp()) if dt is not None else None


def sid(pk: int | None) -> str | None:
    return str(pk) if pk is not None else None


def metric_evaluations(values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "object": "metric_evaluation",
            "name": v["name"],
            "value": v["value"],
            "value_stddev": v.get("value_stddev"),
        }
        for v in values
    ]


def with_progress(qs: QuerySet[Experiment]) -> QuerySet[Experiment]:
    """Annotate the counts ``progress`` needs (one query for a whole list)."""
    return qs.select_related("project").annotate(
        # distinct: for_user() joins collaborators, which would repeat trial rows.
        n_observations=Count("trials", filter=Q(trials__finished_at__isnull=False), distinct=True),
        n_failed=Count("trials", filter=Q(trials__state=RunState.FAILED), distinct=True),
        n_runs=Count("trials", filter=Q(trials__started_at__isnull=False), distinct=True),
        n_active_runs=Count(
            "trials",
            filter=Q(trials__started_at__isnull=False, trials__finished_at__isnull=True),
            distinct=True,
        ),
    )


def experiment(exp: Experiment, best: Trial | None = None) -> dict[str, Any]:
    spec = exp.spec
    parameters = []
    for p in spec["parameters"]:
        item: dict[str, Any] = {"object": "parameter", "name": p["name"], "type": p["type"]}
        if p["type"] == "categorical":
            item["categorical_values"] = [
                {"object": "categorical_value", **v} for v in p["categorical_values"]
            ]
            item["bounds"] = None
        else:
            item["bounds"] = {"object": "bounds", **p["bounds"]}
            item["transformation"] = p.get("transformation", "none")
        item["default_value"] = p.get("default_value")
        parameters.append(item)
    budget = spec.get("observation_budget")
    n_obs = getattr(exp, "n_observations", None)
    progress = None
    if n_obs is not None:
        progress = {
            "object": "progress",
            "observation_count": n_obs,
            "observation_budget_consumed": float(n_obs),
            "failed_observation_count": exp.n_failed,
            "active_run_count": exp.n_active_runs,
            "finished_run_count": exp.n_runs - exp.n_active_runs,
            "total_run_count": exp.n_runs,
            "remaining_budget": None if budget is None else float(max(budget - n_obs, 0)),
            "best_observation": observation(best) if best is not None else None,
        }
    monitor = spec.get("training_monitor")
    return {
        "object": "experiment",
        "id": str(exp.pk),
        "name": exp.description or spec.get("name", ""),
        "type": "offline",
        "state": "active",
        "created": ts(exp.created_at),
        "updated": spec.get("updated", ts(exp.created_at)),
        "parameters": parameters,
        "metrics": [{"object": "metric", "threshold": None, **m} for m in spec.get("metrics", [])],
        "observation_budget": budget,
        "parallel_bandwidth": spec.get("parallel_bandwidth", 1),
        "metadata": spec.get("metadata") or {},
        "progress": progress,
        "training_monitor": None
        if monitor is None
        else {
            "object": "training_monitor",
            "max_checkpoints": monitor["max_checkpoints"],
            "early_stopping_criteria": [
                {"object": "stopping_criteria", **c} for c in monitor["early_stopping_criteria"]
            ],
        },
        "project": exp.project.slug,
        "user": sid(exp.created_by_id),
        "client": None,
        "development": False,
        "num_solutions": 1,
        "conditionals": [],
        "linear_constraints": [],
        "luminide": {
            "project": exp.project.slug,
            "experiment": exp.name,
            "state": exp.state,
            "url": f"/projects/{exp.project.slug}/experiments/{exp.number}/",
        },
    }


def suggestion(trial: Trial) -> dict[str, Any]:
    return {
        "object": "suggestion",
        "id": str(trial.pk),
        "experiment": str(trial.experiment_id),
        "assignments": trial.params,
        "state": "closed" if trial.finished_at is not None else "open",
        "created": ts(trial.created_at),
        "metadata": (trial.metadata.get("suggestion") or {}).get("metadata") or {},
        "luminide_trial": trial.number,
    }


def training_run(trial: Trial, metric: str) -> dict[str, Any]:
    """``metric``: the experiment's optimised metric (it picks the best checkpoint)."""
    run = trial.metadata.get("training_run") or {}
    observed = trial.finished_at is not None
    best = (trial.metadata.get("best_checkpoints") or {}).get(metric)
    best_values = trial.metadata.get("best_values") or {}
    state = "active"
    if observed:
        state = "failed" if trial.state == RunState.FAILED else "completed"
    return {
        "object": "training_run",
        "id": str(trial.pk),
        "experiment": str(trial.experiment_id),
        "suggestion": str(trial.pk),
        "assignments": trial.params,
        "name": run.get("name") or f"trial {trial.number}",
        "metadata": run.get("metadata") or {},
        "checkpoint_count": trial.epochs_done,
        "best_checkpoint": sid(best),
        "observation": str(trial.pk) if observed else None,
        "finished": observed,
        "state": state,
        "created": ts(trial.started_at),
        "updated": ts(trial.finished_at or trial.started_at),
        "completed": ts(trial.finished_at),
        "values": {
            name: {"object": "metric_evaluation", "name": name, "value": v, "value_stddev": None}
            for name, v in best_values.items()
        },
        "stopping_reasons": trial.metadata.get("stopping_reasons"),
        "luminide_trial": trial.number,
    }


def checkpoint(cp: Checkpoint) -> dict[str, Any]:
    return {
        "object": "checkpoint",
        "id": str(cp.pk),
        "training_run": str(cp.trial_id),
        "created": ts(cp.created_at),
        "values": metric_evaluations(cp.values),
        "metadata": cp.metadata or {},
        "should_stop": cp.should_stop,
        "stopping_reasons": cp.stopping_reasons or {},
    }


def observation(trial: Trial) -> dict[str, Any]:
    obs = trial.metadata.get("observation") or {}
    values = obs.get("values") or []
    first = values[0] if len(values) == 1 else None
    return {
        "object": "observation",
        "id": str(trial.pk),
        "experiment": str(trial.experiment_id),
        "suggestion": str(trial.pk),
        "training_run": str(trial.pk) if trial.started_at is not None else None,
        "assignments": trial.params,
        "created": ts(trial.finished_at),
        "failed": bool(obs.get("failed")),
        "value": first["value"] if first else None,
        "value_stddev": first.get("value_stddev") if first else None,
        "values": metric_evaluations(values),
        "metadata": obs.get("metadata") or {},
    }


def paginate(
    qs: QuerySet, params: dict[str, Any], render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """SigOpt pagination, newest first.

    ``before=X``: the newest ``limit`` objects with id < X (the default walks from the
    newest). ``after=X``: the oldest ``limit`` objects with id > X. Either way ``data`` is
    newest first, ``paging.before`` is the cursor to older objects and ``paging.after`` to
    newer ones (null when there are none).
    """
    limit = params["limit"]
    count = qs.count()
    if params["after"] is not None:
        page = list(qs.filter(pk__gt=params["after"]).order_by("pk")[:limit])
        page.reverse()
    else:
        scoped = qs if params["before"] is None else qs.filter(pk__lt=params["before"])
        page = list(scoped.order_by("-pk")[:limit])
    before = after = None
    if page:
        lo, hi = page[-1].pk, page[0].pk
        if qs.filter(pk__lt=lo).exists():
            before = str(lo)
        if qs.filter(pk__gt=hi).exists():
            after = str(hi)
    return {
        "object": "pagination",
        "count": count,
        "data": [render(item) for item in page],
        "paging": {"before": before, "after": after},
    }
