"""State changes made through the Training Monitor REST API.

Like ``sweeps/actions.py``: every change touching several rows is one ``do_<verb>_<noun>``
function, live events are sent after the transaction commits, and the Optuna study is only
touched outside transactions (``sweeps/studies.py`` explains why).

Object mapping (ids are the primary keys, as strings):

* SigOpt experiment -> ``Experiment`` (kind ``api``); ``spec`` holds the validated body
  plus ``study_name``; ``description`` holds the name.
* suggestion, training run and observation -> one ``Trial`` (``Trial.number`` is the
  Optuna trial number). A training run exists once ``started_at`` is set, the observation
  once ``finished_at`` is set; their metadata lives under ``Trial.metadata``.
* checkpoint -> ``Checkpoint``, plus what Luminide's own runs store so the same live charts
  work: a ``TrialEpoch`` (epoch = checkpoint index) with the optimised metric as
  ``val_loss`` (a metric named ``train_loss`` as ``train_loss``) and the Early Ranking score
  when that metric is minimised, and one epoch-end history row (``iter = -1``,
  ``val_loss = epoch_val_loss = metric``) in a ``HistoryChunk``; then the platform's
  ``history.rows`` and ``trial.update`` events (``sweeps.events``) after commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.text import slugify
from optuna.trial import TrialState

from luminide.models import Project
from sweeps import events, studies
from sweeps.actions import do_create_experiment, send_event_on_commit
from sweeps.api import criteria, validation
from sweeps.api.validation import ApiError, bad
from sweeps.history import HistoryArrays, chart_series, encode_chunk
from sweeps.models import Checkpoint, Experiment, HistoryChunk, RunState, Trial, TrialEpoch

logger = logging.getLogger(__name__)

API_PROJECT_NAME = "API experiments"


# --- helpers on the spec -------------------------------------------------------------


def optimized_metric(spec: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in spec["metrics"] if m["strategy"] == "optimize")


def objectives(spec: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["objective"] for m in spec["metrics"]}


def _values_by_name(values: list[dict[str, Any]]) -> dict[str, float]:
    return {v["name"]: v["value"] for v in values}


# --- projects ------------------------------------------------------------------------


def api_project_for(user, slug: str | None = None) -> Project:
    """The project an API experiment goes to.

    ``slug`` given (the experiment body's ``project``): that project, if the user can access
    it. Otherwise the user's own API project ``<username>-api``, created on first use.
    """
    if slug:
        project = Project.objects.for_user(user).filter(slug=slug).first()
        if project is None:
            raise bad("project", f"no project {slug!r} that you can access")
        return project
    base = (slugify(f"{user.username}-api") or f"user{user.pk}-api")[:50]
    mine = Project.objects.filter(owner=user, name=API_PROJECT_NAME, slug__startswith=base)
    project = mine.order_by("created_at", "pk").first()
    if project is not None:
        return project
    # The plain slug may belong to someone else, or a stray folder may occupy it.
    for candidate in (base, f"{base}-{user.pk}", f"{base}-{uuid.uuid4().hex[:8]}"):
        if Project.objects.filter(slug=candidate).exists():
            continue
        try:
            return _create_project(user, candidate)
        except (IntegrityError, ValueError):
            # A concurrent request created it (or its folder exists): look again.
            project = mine.order_by("created_at", "pk").first()
            if project is not None:
                return project
    raise ApiError(409, "could not create your API project; pass an existing project slug")


def _create_project(user, slug: str) -> Project:
    try:
        from luminide.workspace import create_project
    except ImportError:  # pragma: no cover - the workspace module ships with the app
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=API_PROJECT_NAME, owner=user)
        project.output_dir.mkdir(parents=True, exist_ok=True)
        return project
    return create_project(user, slug, API_PROJECT_NAME, "")


# --- experiments ---------------------------------------------------------------------


def do_create_api_experiment(user, spec: dict[str, Any]) -> Experiment:
    """Create an API experiment and its Optuna study.

    Args:
        user: The token's user (the experiment's creator).
        spec: The validated SigOpt experiment body (``validation.experiment_create``).

    Returns:
        The new ``Experiment`` (kind ``api``, state running).
    """
    project = api_project_for(user, spec.pop("project", None))
    study_name = f"luminide-api-{uuid.uuid4().hex}"
    # Validate the space by building it; SpaceError only on impossible bounds.
    studies.sigopt_distributions(spec["parameters"])
    studies.create_study(study_name, [optimized_metric(spec)["objective"]])
    try:
        experiment = do_create_experiment(
            project,
            user,
            kind=Experiment.Kind.API,
            description=spec["name"],
            spec={**spec, "study_name": study_name, "updated": int(time.time())},
            config={},
        )
        with transaction.atomic():
            # An API experiment runs from creation: it has no task to start it.
            experiment.state = RunState.RUNNING
            experiment.started_at = timezone.now()
            experiment.save(update_fields=["state", "started_at"])
            _emit_experiment(experiment)
    except BaseException:
        studies.delete_study(study_name)
        raise
    return experiment


def _emit_experiment(experiment: Experiment) -> None:
    send_event_on_commit(experiment.pk, events.experiment_update(experiment))


def _emit_trial(trial: Trial) -> None:
    send_event_on_commit(trial.experiment_id, events.trial_update(trial))


def do_update_api_experiment(experiment: Experiment, changes: dict[str, Any]) -> Experiment:
    """Apply name / metadata / observation_budget changes (validated)."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        spec = dict(experiment.spec)
        spec.update(changes)
        spec["updated"] = int(timezone.now().timestamp())
        experiment.spec = spec
        fields = ["spec"]
        if "name" in changes:
            experiment.description = changes["name"]
            fields.append("description")
        if "observation_budget" in changes:
            fields += _follow_budget(experiment)
        experiment.save(update_fields=fields)
        _emit_experiment(experiment)
    return experiment


def do_delete_api_experiment(experiment: Experiment) -> None:
    """Delete the experiment, its trials, checkpoints and epochs, then its study."""
    study_name = experiment.spec.get("study_name")
    with transaction.atomic():
        experiment.delete()
    if study_name:
        try:
            studies.delete_study(study_name)
        except Exception:
            logger.exception("could not delete Optuna study %s", study_name)


# --- suggestions ---------------------------------------------------------------------


def _load_study(experiment: Experiment):
    name = experiment.spec["study_name"]
    try:
        return studies.load_study(name)
    except KeyError:  # the study storage was reset: start a fresh study
        return studies.create_study(name, [optimized_metric(experiment.spec)["objective"]])


def _reconcile(study, experiment: Experiment) -> None:
    """Tell the study about observations it missed (a crash between commit and tell)."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return
    finished = Trial.objects.filter(
        experiment=experiment, number__in=running, finished_at__isnull=False
    ).values_list("number", "state", "value")
    for number, state, value in finished:
        _tell(study, number, state, value)


def _tell(study, number: int, state: str, value: float | None) -> None:
    if state == RunState.COMPLETE and value is not None:
        studies.tell(study, number, value)
    else:
        studies.tell(study, number, state=TrialState.FAIL)


def do_create_suggestion(experiment: Experiment, data: dict[str, Any]) -> Trial:
    """Ask the experiment's study for new assignments and store them as a trial.

    Args:
        experiment: An API experiment.
        data: Validated body: ``metadata`` and optional fixed ``assignments``.
    """
    spec = experiment.spec
    study = _load_study(experiment)
    _reconcile(study, experiment)
    dists = studies.sigopt_distributions(spec["parameters"])
    optuna_trial = studies.ask(study, dists, data.get("assignments"))
    params = dict(optuna_trial.params)
    try:
        with transaction.atomic():
            trial = Trial.objects.create(
                experiment=experiment,
                number=optuna_trial.number,
                state=RunState.QUEUED,
                params=params,
                metadata={"suggestion": {"metadata": data["metadata"]}},
            )
            _emit_trial(trial)
    except BaseException as exc:
        studies.tell(study, optuna_trial.number, state=TrialState.FAIL)
        if isinstance(exc, IntegrityError):
            # Trial numbers already taken: the study was reset under a live experiment.
            raise ApiError(409, "the experiment's Optuna study is out of sync") from None
        raise
    return trial


# --- training runs -------------------------------------------------------------------


def do_create_training_run(experiment: Experiment, data: dict[str, Any]) -> Trial:
    """Start the training run of an open suggestion (one run per suggestion)."""
    with transaction.atomic():
        trial = (
            Trial.objects.select_for_update()
            .filter(experiment=experiment, pk=_int_id(data["suggestion"]))
            .order_by()
            .first()
        )
        if trial is None:
            raise bad("suggestion", f"no suggestion {data['suggestion']} in this experiment")
        if trial.started_at is not None:
            raise bad("suggestion", f"suggestion {trial.pk} already has a training run")
        if trial.finished_at is not None:
            raise bad("suggestion", f"suggestion {trial.pk} already has an observation")
        now = timezone.now()
        trial.started_at = now
        trial.state = RunState.RUNNING
        trial.metadata = {
            **trial.metadata,
            "training_run": {"name": data["name"], "metadata": data["metadata"]},
        }
        trial.save(update_fields=["started_at", "state", "metadata"])
        _emit_trial(trial)
    return trial


def _int_id(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else -1


# --- checkpoints ---------------------------------------------------------------------


def _best_scores_at(experiment: Experiment, metric: str) -> list[float | None]:
    """The finished (observed, not failed) runs' best Early Ranking score of ``metric`` at
    each of its checkpoints (see :func:`criteria.best_scores_at`).

    Reading every finished run's scores costs ~30 us a run, and a checkpoint is far more
    frequent than a new finished run: cached until the finished runs change.
    """
    done = Trial.objects.filter(experiment=experiment, state=RunState.COMPLETE)
    stamp = list(done.aggregate(n=Count("pk"), last=Max("finished_at")).values())
    key = f"api-best-scores:{experiment.pk}:{hashlib.sha1(metric.encode()).hexdigest()[:16]}"
    cached = cache.get(key)
    if cached is not None and cached["stamp"] == stamp:
        return cached["best_at"]
    best_at = criteria.best_scores_at(
        (meta.get("scores") or {}).get(metric) or []
        for meta in done.values_list("metadata", flat=True)
    )
    cache.set(key, {"stamp": stamp, "best_at": best_at}, timeout=None)
    return best_at


def _find_run(
    user, run_pk: int, experiment_pk: int | None, *, lock: bool = False
) -> tuple[Experiment, Trial]:
    """The training run and its API experiment, as they are now.

    ``lock``: lock the run's row until the transaction ends, where the database has row
    locks (on SQLite a write transaction already holds the whole database).

    Every checkpoint starts here, so these are two written-out queries: the ORM's version
    took ~1.5 ms, nearly all of it building the SQL (SQLite ran it in under 0.1 ms).

    Raises:
        ApiError: 404 when there is no such run (in ``experiment_pk``, if given) that
            ``user`` may see.
    """
    quote = connection.ops.quote_name
    for_update = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    trial = next(
        iter(
            Trial.objects.raw(
                f"SELECT * FROM {quote(Trial._meta.db_table)} "
                f"WHERE id = %s AND started_at IS NOT NULL{for_update}",
                [run_pk],
            )
        ),
        None,
    )
    wanted = trial.experiment_id if experiment_pk is None and trial is not None else experiment_pk
    experiment = next(
        iter(
            Experiment.objects.raw(
                "SELECT e.*, p.owner_id AS project_owner_id "
                f"FROM {quote(Experiment._meta.db_table)} e "
                f"JOIN {quote(Project._meta.db_table)} p ON p.id = e.project_id "
                "WHERE e.id = %s AND e.kind = %s",
                [wanted, Experiment.Kind.API],
            )
        ),
        None,
    )
    if experiment is not None:
        # The project as far as the access check needs it; other fields load on use.
        experiment.project = Project.from_db(
            connection.alias,
            ["id", "owner_id"],
            [experiment.project_id, experiment.project_owner_id],
        )
    visible = experiment is not None and experiment.project.can_access(user)
    if experiment_pk is not None and not visible:
        raise ApiError(404, f"no experiment {experiment_pk}")
    if trial is None or not visible or trial.experiment_id != experiment.pk:
        where = "" if experiment_pk is None else f" in experiment {experiment_pk}"
        raise ApiError(404, f"no training run {run_pk}{where}")
    trial.experiment = experiment
    return experiment, trial


@dataclass
class _PlannedCheckpoint:
    """Everything a checkpoint stores, computed from one snapshot of its run."""

    seq: int
    first_row: int
    values: list[dict[str, Any]]
    metadata: dict[str, Any]
    should_stop: bool
    reasons: dict[str, bool]
    improved: list[str]  # metrics whose best value this checkpoint sets
    trial_metadata: dict[str, Any]
    best_val_loss: float | None
    score: float | None  # this checkpoint's Early Ranking score (None: not scored)
    train_loss: float | None
    val_loss: float | None
    chunk: bytes
    chart: dict[str, Any]


class _RunChanged(Exception):
    """Another write reached the run between the snapshot and the store."""


#: Attempts when other writes keep changing the run (clients posting to one run at once).
CHECKPOINT_ATTEMPTS = 5


def do_create_checkpoint(
    user, run_pk: int, body: Any, *, experiment_pk: int | None = None
) -> Checkpoint:
    """Store a checkpoint of a training run and decide whether the run should stop.

    ``body`` is the request's JSON, validated here against the experiment's metrics. Also
    stores a ``TrialEpoch`` and a history row for the charts and updates the trial's best
    value and Early Ranking score; events go out after commit.

    The work (validation, criteria, the score, chart data) is done on a snapshot of the run,
    outside any transaction; the short write transaction stores it only if the run is still
    as read (a compare-and-set on ``epochs_done``). Processes posting checkpoints at once so
    hold SQLite's write lock only for the writes, instead of queueing behind each other's
    scoring. When the run did change (clients posting to one run at once), the checkpoint
    is planned again inside the write transaction, where the run cannot change.

    Raises:
        ApiError: 404 unknown run; 400 invalid body; 403 after the observation or beyond
            ``max_checkpoints``; 429 (retry) when the run kept changing.
    """
    for attempt in range(CHECKPOINT_ATTEMPTS):
        locked = attempt > 0
        with transaction.atomic() if locked else contextlib.nullcontext():
            experiment, trial = _find_run(user, run_pk, experiment_pk, lock=locked)
            planned = _plan_checkpoint(experiment, trial, body)
            try:
                return _store_checkpoint(trial, planned)
            except (_RunChanged, IntegrityError):
                continue
    raise ApiError(429, f"training run {run_pk} kept changing while storing a checkpoint; retry")


def _plan_checkpoint(experiment: Experiment, trial: Trial, body: Any) -> _PlannedCheckpoint:
    spec = experiment.spec
    data = validation.checkpoint_create(body, spec)
    monitor = spec.get("training_monitor") or {}
    max_checkpoints = monitor.get("max_checkpoints")
    rules = monitor.get("early_stopping_criteria") or []
    objective_of = objectives(spec)
    chart = optimized_metric(spec)
    new_values = _values_by_name(data["values"])
    if trial.finished_at is not None:
        raise ApiError(
            403, f"training run {trial.pk} already has an observation: no more checkpoints"
        )
    seq = trial.epochs_done
    if max_checkpoints is not None and seq >= max_checkpoints:
        raise ApiError(
            403,
            f"training run {trial.pk} already has max_checkpoints={max_checkpoints} checkpoints",
        )
    ranked = {c["metric"] for c in rules if c["type"] == "early_ranking"}
    best_at = {metric: _best_scores_at(experiment, metric) for metric in ranked}
    # The values the criteria look at, kept on the trial (<= max_checkpoints floats per
    # metric) so a checkpoint never re-reads the run's earlier checkpoints.
    meta = dict(trial.metadata)
    watched = {c["metric"] for c in rules}
    history = {name: list(values) for name, values in (meta.get("series") or {}).items()}
    for name in watched:
        if name in new_values:
            history.setdefault(name, []).append(new_values[name])
    if watched:
        meta["series"] = history

    memo: dict[tuple[float, ...], float | None] = {}

    def scorer(values) -> float | None:
        key = tuple(values)
        if key not in memo:
            memo[key] = criteria.early_ranking_score(values)
        return memo[key]

    score = None
    scored = chart["objective"] == "minimize" and chart["name"] in new_values
    if scored and criteria.ranker_available():
        chart_values = history.get(chart["name"])
        if chart_values is None:  # not watched by a criterion: read the stored epochs
            chart_values = [
                v
                for v in trial.epochs.order_by("epoch").values_list("val_loss", flat=True)
                if v is not None
            ] + [new_values[chart["name"]]]
        score = scorer(chart_values)
    # Each early-ranked metric's score at every value, for the runs that come after this one.
    scores = {name: list(values) for name, values in (meta.get("scores") or {}).items()}
    for name in ranked & new_values.keys():
        scores.setdefault(name, []).append(scorer(history[name]))
    if ranked:
        meta["scores"] = scores
    reasons = criteria.evaluate(rules, objective_of, history, best_at, scorer)
    should_stop = any(reasons.values()) or (
        max_checkpoints is not None and seq + 1 >= max_checkpoints
    )
    best_values = dict(meta.get("best_values") or {})
    improved = []
    for name, value in new_values.items():
        old = best_values.get(name)
        if old is None or criteria.is_better(value, old, objective_of[name]):
            best_values[name] = value
            improved.append(name)
    meta["best_values"] = best_values
    if should_stop:
        meta["stopping_reasons"] = reasons
    meta["history"] = {
        **(meta.get("history") or {}),
        "first_epoch": 0,
        "step_column": "iter",
        "has_end_rows": True,
    }
    train_loss = new_values.get("train_loss") if chart["name"] != "train_loss" else None
    val_loss = new_values.get(chart["name"])
    row = _history_row(trial.rows_stored, seq, train_loss, val_loss)
    chart_data = chart_series(row, first_epoch=0)
    chart_data.pop("smooth_last", None)
    return _PlannedCheckpoint(
        seq=seq,
        first_row=trial.rows_stored,
        values=data["values"],
        metadata=data["metadata"],
        should_stop=should_stop,
        reasons=reasons,
        improved=improved,
        trial_metadata=meta,
        best_val_loss=best_values.get(chart["name"]),
        score=score,
        train_loss=train_loss,
        val_loss=val_loss,
        chunk=encode_chunk(row),
        chart=chart_data,
    )


def _history_row(
    first_row: int, epoch: int, train_loss: float | None, val_loss: float | None
) -> HistoryArrays:
    """A checkpoint as one epoch-end history row (``iter = -1``)."""
    nan = float("nan")
    val = nan if val_loss is None else val_loss
    return HistoryArrays(
        seq=np.array([first_row], dtype=np.int64),
        epoch=np.array([epoch], dtype=np.int64),
        step=np.array([-1], dtype=np.int64),
        train_loss=np.array([nan if train_loss is None else train_loss]),
        val_loss=np.array([val]),
        epoch_val_loss=np.array([val]),
        step_column="iter",
    )


def _store_checkpoint(trial: Trial, planned: _PlannedCheckpoint) -> Checkpoint:
    """Write a planned checkpoint if its run is still as planned; else :class:`_RunChanged`."""
    now = timezone.now()
    with transaction.atomic():
        checkpoint = Checkpoint.objects.create(
            trial=trial,
            seq=planned.seq,
            values=planned.values,
            metadata=planned.metadata,
            should_stop=planned.should_stop,
            stopping_reasons=planned.reasons,
            created_at=now,
        )
        meta = planned.trial_metadata
        meta["best_checkpoints"] = {
            **(meta.get("best_checkpoints") or {}),
            **dict.fromkeys(planned.improved, checkpoint.pk),
        }
        changes = {
            "metadata": meta,
            "epochs_done": planned.seq + 1,
            "rows_stored": planned.first_row + 1,
            "best_val_loss": planned.best_val_loss,
            "score": trial.score if planned.score is None else planned.score,
        }
        stored = Trial.objects.filter(
            pk=trial.pk,
            epochs_done=planned.seq,
            rows_stored=planned.first_row,
            finished_at__isnull=True,
        ).update(**changes)
        if not stored:
            raise _RunChanged
        for name, value in changes.items():
            setattr(trial, name, value)
        TrialEpoch.objects.create(
            trial=trial,
            epoch=planned.seq,
            train_loss=planned.train_loss,
            val_loss=planned.val_loss,
            score=planned.score,
            created_at=now,
        )
        HistoryChunk.objects.create(
            trial=trial,
            first_seq=planned.first_row,
            row_count=1,
            first_epoch=planned.seq,
            last_epoch=planned.seq,
            data=planned.chunk,
        )
        send_event_on_commit(
            trial.experiment_id,
            events.history_rows(
                trial,
                after=planned.first_row,
                cursor=trial.rows_stored,
                chart=planned.chart,
                step_column="iter",
            ),
            events.trial_update(trial),
        )
    return checkpoint


# --- observations --------------------------------------------------------------------


def do_create_observation(experiment: Experiment, data: dict[str, Any]) -> Trial:
    """Close a suggestion with an observation, finish its run and tell the study.

    With no value and not failed, the values of the run's best checkpoint (for the
    optimised metric) are used.
    """
    spec = experiment.spec
    chart = optimized_metric(spec)
    ids = {k: _int_id(data[k]) for k in ("suggestion", "training_run") if data.get(k)}
    if len(set(ids.values())) > 1:
        raise bad("training_run", "belongs to another suggestion")
    key, pk = next(iter(ids.items()))
    with transaction.atomic():
        trial = (
            Trial.objects.select_for_update()
            .filter(experiment=experiment, pk=pk)
            .order_by()
            .first()
        )
        if trial is None or (key == "training_run" and trial.started_at is None):
            raise bad(key, f"no {key.replace('_', ' ')} {data[key]} in this experiment")
        if trial.finished_at is not None:
            raise bad(key, f"suggestion {trial.pk} already has an observation")
        values = data["values"]
        if values is None and not data["failed"]:
            best_id = (trial.metadata.get("best_checkpoints") or {}).get(chart["name"])
            if best_id is None:
                raise bad("value", "is required (the run has no checkpoint to take it from)")
            values = Checkpoint.objects.get(pk=best_id).values
        now = timezone.now()
        trial.finished_at = now
        trial.state = RunState.FAILED if data["failed"] else RunState.COMPLETE
        trial.value = None if data["failed"] else _values_by_name(values)[chart["name"]]
        if data["failed"]:
            trial.failure_reason = "reported as failed through the API"
        trial.metadata = {
            **trial.metadata,
            "observation": {
                "values": values or [],
                "failed": data["failed"],
                "metadata": data["metadata"],
            },
        }
        trial.save(update_fields=["finished_at", "state", "value", "failure_reason", "metadata"])
        _update_experiment_after_observation(experiment, trial, chart["objective"])
    try:
        _tell(_load_study(experiment), trial.number, trial.state, trial.value)
    except Exception:
        # The observation is stored; the next suggestion reconciles the study.
        logger.exception("could not tell study %s about trial %s", spec["study_name"], trial.number)
    return trial


def _follow_budget(exp: Experiment) -> list[str]:
    """Set a running/complete API experiment's state from its observation count and budget
    (complete once the budget is reached; running again when the budget was raised). The
    changed fields."""
    budget = exp.spec.get("observation_budget")
    if exp.state not in (RunState.RUNNING, RunState.COMPLETE):
        return []  # cancelled on the dashboard: stays so
    observed = Trial.objects.filter(experiment=exp, finished_at__isnull=False).count()
    complete = bool(budget) and observed >= budget
    if complete == (exp.state == RunState.COMPLETE):
        return []
    exp.state = RunState.COMPLETE if complete else RunState.RUNNING
    exp.finished_at = timezone.now() if complete else None
    return ["state", "finished_at"]


def _update_experiment_after_observation(
    experiment: Experiment, trial: Trial, objective: str
) -> None:
    exp = Experiment.objects.select_for_update().get(pk=experiment.pk)
    fields = []
    improved = trial.value is not None and (
        exp.best_value is None or criteria.is_better(trial.value, exp.best_value, objective)
    )
    if improved:
        exp.best_value = trial.value
        fields.append("best_value")
    fields += _follow_budget(exp)
    if fields:
        exp.save(update_fields=fields)
        _emit_experiment(exp)
    _emit_trial(trial)
