"""Sweep pages: the Sweep form of the Run Experiment panel, the live sweep page, its JSON
endpoints, Stop / Resume / Add trials, and applying ``config-tuned.yaml``.

Access goes through the per-object helpers of :mod:`sweeps.views` (404 for users who
neither own nor collaborate on the project); state changes go through :mod:`sweeps.sweep`
and :mod:`sweeps.actions`. Chart data are built by the pure functions of
:mod:`sweeps.sweep_charts`; ``static/js/sweep.js`` draws them.

Live updates: the page listens on the experiment's websocket (``ws/experiments/<id>/``) and
treats every event as a hint to re-sync over HTTP from :func:`sweep_data`. The summary part
of that document (one row per trial, with its ``epochs``) is the cursor: a trial whose
``epochs`` differ from the ``n`` of the curve the page holds has its curve fetched again
(``?curves=3,7``). Only the curves of changed trials travel after the first load.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.db.models.fields.json import KT
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from luminide.models import ComputeNode, Project
from sweeps import sweep_charts
from sweeps.calibration import predict_final
from sweeps.history import json_float
from sweeps.models import ACTIVE_STATES, Experiment, RunState, TrialEpoch
from sweeps.search_space import YamlFileError, parse_config_yaml
from sweeps.sweep import (
    RESULTS_CSV,
    TUNED_CONFIG,
    SweepError,
    do_resume_sweep,
    do_start_sweep,
    do_stop_sweep,
    stored_space,
    tuned_trial_number,
)
from sweeps.views import _get_experiment_for_user, _get_project_for_user

log = logging.getLogger(__name__)

#: Trials whose curves one request may ask for by number.
MAX_CURVE_REQUEST = 2_000
IMPORTANCE_CACHE_SECONDS = 24 * 3600
IMPORTANCE_STALE_SECONDS = 60
#: Completed trials fANOVA looks at, at most (a fixed random sample beyond).
IMPORTANCE_MAX_TRIALS = 300


def _get_sweep_for_user(request: HttpRequest, slug: str, number: int) -> Experiment:
    """Sweep ``expN`` of a project the user may see, else 404 (also for non-sweeps)."""
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    if not experiment.is_sweep:
        raise Http404("not a sweep")
    return experiment


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def objective_label(experiment: Experiment) -> str:
    return "Early Ranking score" if experiment.is_fast else "best val loss"


# ---------------------------------------------------------------- start (Run Experiment)


def _form_int(request: HttpRequest, name: str, default: int, field: str) -> int:
    raw = request.POST.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SweepError(f"{field}: must be a whole number (got {raw[:20]!r})") from None


@login_required
@require_POST
def sweep_start(request: HttpRequest, slug: str) -> HttpResponse:
    """The Sweep tab: start a (Fast) Sweep over ``code/sweep.yaml``.

    Invalid input (a bad ``sweep.yaml``/``config.yaml``, counts out of range) starts
    nothing and answers the error naming file, line and parameter: JSON 400 for the
    panel's script, else a message on the IDE page.
    """
    project = _get_project_for_user(request, slug)
    try:
        n_trials = _form_int(request, "n_trials", 20, "trials")
        parallel = _form_int(request, "parallel", 1, "parallel")
        experiment = do_start_sweep(
            project,
            request.user,
            n_trials=n_trials,
            parallel=parallel,
            fast=request.POST.get("fast") in ("on", "1", "true"),
            description=request.POST.get("description", "").strip()[:500],
        )
    except (YamlFileError, SweepError) as exc:
        if _wants_json(request):
            return JsonResponse(
                {
                    "error": str(exc),
                    "file": getattr(exc, "filename", None),
                    "line": getattr(exc, "line", None),
                },
                status=400,
            )
        messages.error(request, f"Sweep not started: {exc}")
        return redirect(reverse("project_ide", kwargs={"slug": project.slug}) + "?tab=sweep")
    url = reverse("experiment_detail", kwargs={"slug": project.slug, "number": experiment.number})
    if _wants_json(request):
        return JsonResponse({"experiment": experiment.number, "url": url})
    return redirect(url)


# ---------------------------------------------------------------- the page


def render_sweep_page(request: HttpRequest, project: Project, experiment: Experiment):
    """The sweep page; ``experiment_detail`` delegates here for sweeps (access checked)."""
    tuned = experiment.output_dir / TUNED_CONFIG
    tuned_text = ""
    if tuned.is_file() and not tuned.is_symlink():
        tuned_text = tuned.read_text(errors="replace")[:20_000]
    spec = experiment.spec or {}
    workers = ComputeNode.objects.exclude(state=ComputeNode.State.OFFLINE).count()
    # A Fast Sweep's pick, in val loss terms: calibrated on the project's full runs.
    tuned_trial = (
        experiment.trials.filter(number=tuned_trial_number(experiment)).first()
        if experiment.is_fast and tuned_text
        else None
    )
    tuned_runs, baseline = _tuned_trainings(experiment, tuned_text)
    return render(
        request,
        "sweeps/sweep_detail.html",
        {
            "project": project,
            "exp": experiment,
            "spec": spec,
            "objective": objective_label(experiment),
            "tuned_text": tuned_text,
            "is_fast": experiment.is_fast,
            "prediction": predict_final(tuned_trial) if tuned_trial is not None else None,
            "tuned_runs": tuned_runs,
            "tuned_best": _best_tuned_run(tuned_runs),
            "baseline": baseline,
            "tuned_training_active": any(e.state in ACTIVE_STATES for e in tuned_runs),
            "has_results": (experiment.output_dir / RESULTS_CSV).is_file(),
            "is_active": experiment.state in ACTIVE_STATES,
            "workers_online": workers,
            "can_resume": experiment.state == RunState.CANCELLED,
            "tuned_name": TUNED_CONFIG,
            "results_name": RESULTS_CSV,
            "nav": "experiments",
        },
    )


def _tuned_trainings(
    experiment: Experiment, tuned_text: str
) -> tuple[list[Experiment], Experiment | None]:
    """What came of the tuned config: the project's Train runs started with it after the
    sweep (by either button, or by hand), and the best completed Train run of any other config
    to hold it against. A pick that trains worse than the config it was meant to beat must
    show on the sweep's own page."""
    try:
        tuned = parse_config_yaml(tuned_text, TUNED_CONFIG) if tuned_text else None
    except YamlFileError:
        tuned = None
    if not tuned:
        return [], None
    trainings = experiment.project.experiments.filter(kind=Experiment.Kind.TRAIN).only(
        "number", "config", "state", "best_value", "project"
    )
    runs, others = [], []
    for training in trainings.order_by("number"):
        if training.config == tuned:
            if training.number > experiment.number:
                runs.append(training)
        elif training.state == RunState.COMPLETE and training.best_value is not None:
            others.append(training)
    return runs, min(others, key=lambda e: e.best_value, default=None)


def _best_tuned_run(runs: list[Experiment]) -> Experiment | None:
    """What the tuned config reached: its best completed training; while none has completed,
    the best of those running (a failed one reached nothing)."""
    for states in ((RunState.COMPLETE,), ACTIVE_STATES):
        done = [e for e in runs if e.state in states and e.best_value is not None]
        if done:
            return min(done, key=lambda e: e.best_value)
    return None


# ---------------------------------------------------------------- JSON


def _points(experiment: Experiment) -> list[sweep_charts.TrialPoint]:
    now = timezone.now()
    rows = (
        experiment.trials.order_by("number")
        .annotate(retried_after=KT("metadata__retried_after"))
        .values(
            "number",
            "state",
            "value",
            "score",
            "best_val_loss",
            "epochs_done",
            "started_at",
            "finished_at",
            "params",
            "failure_reason",
            "retried_after",
        )
    )
    return [
        sweep_charts.TrialPoint(
            number=row["number"],
            state=row["state"],
            value=row["value"],
            score=row["score"],
            best_val_loss=row["best_val_loss"],
            epochs=row["epochs_done"],
            seconds=(
                None
                if row["started_at"] is None
                else ((row["finished_at"] or now) - row["started_at"]).total_seconds()
            ),
            params=row["params"] or {},
            failure_reason=row["failure_reason"] or "",
            retried_after=row["retried_after"] or "",
        )
        for row in rows
    ]


def _param_specs(experiment: Experiment) -> list[dict]:
    try:
        space = stored_space(experiment)
    except YamlFileError:
        return []
    return sweep_charts.param_specs(space.distributions)


def sweep_summary(experiment: Experiment) -> dict:
    """Everything of the page but the learning curves (one query over the trials)."""
    points = _points(experiment)
    ranks = sweep_charts.rank_trials(points)
    try:
        tuned_mtime: float | None = (experiment.output_dir / TUNED_CONFIG).stat().st_mtime
    except OSError:
        tuned_mtime = None
    specs = _param_specs(experiment)
    spec = experiment.spec or {}
    objective = objective_label(experiment)
    return {
        "experiment": {
            "id": experiment.pk,
            "number": experiment.number,
            "name": experiment.name,
            "kind": experiment.kind,
            "fast": experiment.is_fast,
            "state": experiment.state,
            "failure_reason": experiment.failure_reason,
            "best_value": json_float(experiment.best_value),
            "n_trials": spec.get("n_trials"),
            "parallel": spec.get("parallel"),
            "objective": objective,
            "started_at": _iso(experiment.started_at),
            "finished_at": _iso(experiment.finished_at),
            "has_tuned": tuned_mtime is not None,
            # Changes whenever config-tuned.yaml is rewritten (a new best): the page then
            # re-renders its tuned config card.
            "tuned_mtime": tuned_mtime,
        },
        "params": specs,
        "trials": sweep_charts.trial_rows(points, ranks),
        "counts": sweep_charts.counts(points),
        "n_complete": len(ranks),
        "epochs_total": sum(p.epochs for p in points),
        "history": sweep_charts.optimization_history(points),
        "parcoords": sweep_charts.parallel_coordinates(points, specs, objective),
    }


def sweep_curves(experiment: Experiment, numbers: list[int] | None) -> dict[str, dict]:
    """Learning curves (per-epoch val loss and Early Ranking score) of the trials
    ``numbers`` (None: all), downsampled with the budget of the sweep's size."""
    trial_numbers = dict(experiment.trials.values_list("pk", "number"))
    rows = TrialEpoch.objects.filter(trial__experiment=experiment)
    if numbers is not None:
        ids = [pk for pk, n in trial_numbers.items() if n in set(numbers)]
        rows = rows.filter(trial_id__in=ids)
    ordered = rows.order_by("trial_id", "epoch").values_list(
        "trial_id", "epoch", "val_loss", "score"
    )
    # A plain cursor: 50,000 rows through the ORM's row machinery cost more than the query.
    sql, params = ordered.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    return sweep_charts.curves(
        [(trial_numbers[t], e, v, s) for t, e, v, s in fetched],
        n_trials=len(trial_numbers),
    )


def _curve_request(request: HttpRequest) -> list[int] | None:
    """``?curves`` absent: all; empty: none; ``3,7``: those trials."""
    if "curves" not in request.GET:
        return None
    numbers = []
    for piece in request.GET["curves"].split(","):
        piece = piece.strip()
        if piece.isdigit():
            numbers.append(int(piece))
    return numbers[:MAX_CURVE_REQUEST]


@login_required
@require_GET
def sweep_data(request: HttpRequest, slug: str, number: int) -> JsonResponse:
    """The sweep page's data: summary, plus the curves asked for (``?curves=``)."""
    experiment = _get_sweep_for_user(request, slug, number)
    payload = sweep_summary(experiment)
    wanted = _curve_request(request)
    payload["curves"] = {} if wanted == [] else sweep_curves(experiment, wanted)
    payload["curve_budget"] = sweep_charts.curve_points_per_trial(len(payload["trials"]))
    return JsonResponse(payload)


def param_importance(experiment: Experiment) -> dict:
    """Optuna's fANOVA parameter importances of the sweep's study, cached.

    Computed only with at least 2 completed trials; the cache key changes with the set of
    completed trials and their values, so a new result recomputes it once.
    """
    # The trials the page ranks (finite values): its count of them says when to ask again.
    done = [
        (number, value)
        for number, value in experiment.trials.filter(state=RunState.COMPLETE, value__isnull=False)
        .order_by("number")
        .values_list("number", "value")
        if math.isfinite(value)
    ]
    result: dict = {"n_complete": len(done), "importance": [], "status": "too_few"}
    if len(done) < 2:
        return result
    digest = hashlib.sha1(repr(done).encode()).hexdigest()[:16]
    key = f"sweep-importance:{experiment.pk}:{experiment.spec.get('study', '')}"
    cached = cache.get(key)
    if cached is not None:
        if cached["digest"] == digest:
            return cached["result"]
        # While a big sweep runs, trials complete faster than fANOVA runs: answer the last
        # result for a while unless the completed trials grew by more than 10%.
        fresh = time.monotonic() - cached["at"] < IMPORTANCE_STALE_SECONDS
        close = len(done) - cached["result"]["n_complete"] <= max(2, len(done) // 10)
        if experiment.state in ACTIVE_STATES and fresh and close:
            return {**cached["result"], "stale": True}
    try:
        import optuna

        study = _importance_study(experiment)
        # Fewer, shallow trees: fANOVA's cost grows with the leaves; with the 300-trial cap
        # a 1,000-trial sweep takes ~1 s, not ~40 s, with the same ranking of parameters.
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16, max_depth=6, seed=0)
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        result = {
            "n_complete": len(done),
            "status": "ok",
            "importance": [
                {"name": name, "value": json_float(value)} for name, value in importances.items()
            ],
        }
    except Exception as exc:  # optuna refuses some spaces (e.g. one value per parameter)
        log.info("parameter importance of %s not available: %s", experiment, exc)
        result = {"n_complete": len(done), "status": "error", "message": str(exc)[:300]}
    cache.set(
        key, {"digest": digest, "at": time.monotonic(), "result": result}, IMPORTANCE_CACHE_SECONDS
    )
    return result


def _importance_study(experiment: Experiment):
    """The sweep's Optuna study; rebuilt in memory from the trial rows when it has no
    completed trial (deleted, or a sweep whose rows were written without one)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from sweeps import studies

    name = experiment.spec.get("study")
    if name:
        try:
            study = studies.load_study(name)
        except KeyError:
            study = None
        if study is not None:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len(done) > IMPORTANCE_MAX_TRIALS:
                # fANOVA's cost grows faster than linearly: a fixed random sample keeps a
                # 1,000-trial sweep at about a second, in the web process.
                done = random.Random(0).sample(done, IMPORTANCE_MAX_TRIALS)
                sample = optuna.create_study(direction="minimize")
                sample.add_trials(done)
                return sample
            if done:
                return study
    space = stored_space(experiment).distributions
    rows = experiment.trials.filter(state=RunState.COMPLETE, value__isnull=False).values_list(
        "params", "value"
    )
    trials = []
    for params, value in rows:
        dists = {k: space[k] for k in params if k in space}
        try:
            trials.append(
                create_trial(params={k: params[k] for k in dists}, distributions=dists, value=value)
            )
        except ValueError:  # a value outside today's space: leave that trial out
            continue
    if len(trials) > IMPORTANCE_MAX_TRIALS:
        trials = random.Random(0).sample(trials, IMPORTANCE_MAX_TRIALS)
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    return study


@login_required
@require_GET
def sweep_importance(request: HttpRequest, slug: str, number: int) -> JsonResponse:
    experiment = _get_sweep_for_user(request, slug, number)
    return JsonResponse(param_importance(experiment))


def _iso(value):
    return value.isoformat() if value else None


# ---------------------------------------------------------------- stop / resume / add


def _back(experiment: Experiment) -> HttpResponse:
    return redirect("experiment_detail", slug=experiment.project.slug, number=experiment.number)


@login_required
@require_POST
def sweep_stop(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    experiment = _get_sweep_for_user(request, slug, number)
    if do_stop_sweep(experiment):
        messages.info(request, f"{experiment.name} stopped. Resume goes on from here.")
    return _back(experiment)


@login_required
@require_POST
def sweep_resume(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Resume a stopped sweep; with ``add_trials`` N, run N more trials (any state)."""
    experiment = _get_sweep_for_user(request, slug, number)
    was_running = experiment.state in ACTIVE_STATES
    try:
        add = _form_int(request, "add_trials", 0, "add trials")
        if add < 0 or ("add_trials" in request.POST and add == 0):
            raise SweepError(f"add trials: must be at least 1 (got {add})")
        do_resume_sweep(experiment, add_trials=add)
    except SweepError as exc:
        messages.error(request, str(exc))
        return _back(experiment)
    if add and was_running:
        messages.success(request, f"{experiment.name}: {add} more trials added.")
    else:
        extra = f" with {add} more trials" if add else ""
        messages.success(request, f"{experiment.name} resumed{extra}.")
    return _back(experiment)


# ---------------------------------------------------------------- tuned config


def apply_tuned_config(experiment: Experiment) -> tuple[Path, Path | None]:
    """Copy the sweep's ``config-tuned.yaml`` into the project's ``code/config.yaml``.

    The previous ``config.yaml`` is kept as ``code/config.yaml.bak-<UTC timestamp>`` (in the
    IDE's file tree, so a user can open and restore it). Nothing is written when the
    tuned file is missing or invalid.

    Returns:
        The new ``config.yaml`` and the backup (None when there was nothing to keep or the
        file already held the tuned config).

    Raises:
        SweepError: the sweep has no ``config-tuned.yaml`` yet.
        YamlFileError: the tuned file is not a valid config.
    """
    source = experiment.output_dir / TUNED_CONFIG
    if not source.is_file() or source.is_symlink():
        raise SweepError(f"{TUNED_CONFIG}: {experiment.name} has no completed trial yet")
    text = source.read_text()
    parse_config_yaml(text, TUNED_CONFIG)
    code = experiment.project.code_dir
    code.mkdir(parents=True, exist_ok=True)
    target = code / "config.yaml"
    backup = None
    if target.is_file():
        if target.read_text(errors="replace") == text:
            return target, None
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        backup = code / f"config.yaml.bak-{stamp}"
        suffix = 1
        while backup.exists():
            suffix += 1
            backup = code / f"config.yaml.bak-{stamp}-{suffix}"
        shutil.copy2(target, backup)
    tmp = code / f".config.yaml.{os.getpid()}.tmp"
    tmp.write_text(text)
    tmp.replace(target)
    return target, backup


def _apply_or_message(request: HttpRequest, experiment: Experiment) -> bool:
    try:
        _target, backup = apply_tuned_config(experiment)
    except (SweepError, YamlFileError) as exc:
        messages.error(request, str(exc))
        return False
    kept = f" Previous config kept as {backup.name}." if backup else ""
    messages.success(
        request, f"code/config.yaml now holds the tuned config of {experiment.name}.{kept}"
    )
    return True


@login_required
@require_POST
def sweep_use_tuned(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Use tuned config: ``config-tuned.yaml`` into ``code/config.yaml``; open it in the IDE."""
    experiment = _get_sweep_for_user(request, slug, number)
    if not _apply_or_message(request, experiment):
        return _back(experiment)
    return redirect(reverse("project_ide", kwargs={"slug": slug}) + "#config.yaml")


@login_required
@require_POST
def sweep_train_tuned(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Train with tuned config: apply it, then start a full training right away."""
    from sweeps.actions import check_run_files, do_start_experiment

    experiment = _get_sweep_for_user(request, slug, number)
    try:
        # Before code/config.yaml is changed (the tuned config becomes it).
        check_run_files(experiment.project, config=False)
    except ValueError as exc:
        messages.error(request, f"Could not start: {exc}")
        return _back(experiment)
    if not _apply_or_message(request, experiment):
        return _back(experiment)
    try:
        training = do_start_experiment(
            experiment.project,
            request.user,
            fast=False,
            description=f"full training with the tuned config of {experiment.name}"[:500],
        )
    except ValueError as exc:
        messages.error(request, f"Could not start: {exc}")
        return _back(experiment)
    return redirect("experiment_detail", slug=slug, number=training.number)


__all__ = [
    "apply_tuned_config",
    "param_importance",
    "render_sweep_page",
    "sweep_curves",
    "sweep_data",
    "sweep_importance",
    "sweep_resume",
    "sweep_start",
    "sweep_stop",
    "sweep_summary",
    "sweep_train_tuned",
    "sweep_use_tuned",
]
