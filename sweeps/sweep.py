"""Sweeps: one Optuna study per experiment, driven by trial events, not by a driver process.

Life of a sweep:

1. :func:`do_start_sweep` validates ``sweep.yaml`` and ``config.yaml`` (nothing starts on
   bad input), creates experiment ``expN`` and its study, snapshots the code and fills the
   first ``parallel`` slots.
2. Filling a slot (:func:`do_fill_sweep`) claims trial rows in one transaction, then asks
   the study (outside it: Optuna writes on its own connection, see ``sweeps.studies``),
   writes the trial's full ``config.yaml`` into its run folder and enqueues ``run_trial``.
3. When a trial finishes, ``do_finish_trial`` enqueues ``advance_sweep`` (default queue),
   which calls :func:`do_advance_sweep`: tell the study the trial's objective, rewrite
   ``config-tuned.yaml`` on a new best and ``sweep_results.csv``, retry a trial lost with its
   worker once, fill free slots, and finish the sweep when every trial is done.

Every step is idempotent (conditional updates, a ``told`` mark per trial), so a duplicate
task, a restarted web process, worker or Redis (see :func:`do_reconcile_sweeps`) does no harm.
"""

from __future__ import annotations

import collections
import csv
import logging
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from optuna.trial import TrialState

from luminide.models import Project
from sweeps import actions, events, studies
from sweeps.models import ACTIVE_STATES, Experiment, HistoryChunk, RunState, Trial, TrialEpoch
from sweeps.search_space import (
    SearchSpace,
    YamlFileError,
    parse_config_yaml,
    parse_sweep_yaml,
    render_config,
)

log = logging.getLogger(__name__)

MAX_TRIALS = 10_000
MAX_PARALLEL = 64
#: A trial whose worker died is run again this many times before it is FAILED.
LOST_WORKER_RETRIES = 1
LOST_WORKER_PREFIX = "lost worker"
TUNED_CONFIG = "config-tuned.yaml"
RESULTS_CSV = "sweep_results.csv"


class SweepError(ValueError):
    """A sweep request that cannot be carried out; the message names the field."""


def _read_code_file(project: Project, name: str) -> str:
    path = project.code_dir / name
    try:
        return path.read_text()
    except FileNotFoundError:
        raise YamlFileError(name, None, f"not found in the project's code/ ({path})") from None
    except UnicodeDecodeError:
        raise YamlFileError(name, None, "is not UTF-8 text") from None


def load_sweep_files(project: Project) -> tuple[SearchSpace, dict[str, Any], str]:
    """Parse the project's ``sweep.yaml`` and ``config.yaml`` and check that every searched
    parameter is in the config; raise :class:`YamlFileError`."""
    sweep_text = _read_code_file(project, "sweep.yaml")
    space = parse_sweep_yaml(sweep_text)
    defaults = parse_config_yaml(_read_code_file(project, "config.yaml"))
    space.check_against(defaults)
    return space, defaults, sweep_text


def stored_space(experiment: Experiment) -> SearchSpace:
    """The search space a sweep started with (its stored copy of ``sweep.yaml``)."""
    return parse_sweep_yaml(experiment.spec.get("sweep_yaml", ""), strict=False)


def _study(experiment: Experiment, trial_number: int = 0):
    """The sweep's study. Each ask loads it with a fresh sampler, so a seeded sweep seeds
    that sampler per trial: with one seed for every ask, TPE's random start-up phase would
    suggest the same values for every trial."""
    seed = experiment.spec.get("seed")
    return studies.load_study(
        experiment.spec["study"], seed=None if seed is None else seed * 100_003 + trial_number
    )


def _check_counts(n_trials: int, parallel: int) -> None:
    if not 1 <= n_trials <= MAX_TRIALS:
        raise SweepError(f"trials: must be between 1 and {MAX_TRIALS} (got {n_trials})")
    if not 1 <= parallel <= MAX_PARALLEL:
        raise SweepError(f"parallel: must be between 1 and {MAX_PARALLEL} (got {parallel})")


def do_start_sweep(
    project: Project,
    user,
    *,
    n_trials: int,
    parallel: int = 1,
    fast: bool = False,
    description: str = "",
    seed: int | None = None,
) -> Experiment:
    """Start a sweep of ``n_trials`` trials, ``parallel`` at a time.

    Args:
        project: Its ``code/sweep.yaml`` is the search space, ``code/config.yaml`` the defaults.
        user: Who starts it (or None).
        n_trials: Trials to run in total.
        parallel: Trials queued at once (each needs a free worker to actually run).
        fast: Fast Sweep: trials run ``fast.sh`` and are ranked by their Early Ranking score.
        description: Free text.
        seed: Seed of the TPE sampler (reproducible suggestions).

    Returns:
        The sweep experiment, its first trials queued.

    Raises:
        YamlFileError: ``sweep.yaml`` or ``config.yaml`` is missing or invalid, or the
            script the trials run (``fast.sh`` / ``full.sh``) is missing.
        SweepError: ``n_trials`` or ``parallel`` out of range.
    """
    _check_counts(n_trials, parallel)
    _space_unused, defaults, sweep_text = load_sweep_files(project)
    _read_code_file(project, "fast.sh" if fast else "full.sh")  # else every trial would fail
    kind = Experiment.Kind.FAST_SWEEP if fast else Experiment.Kind.SWEEP
    spec = {"sweep_yaml": sweep_text, "n_trials": n_trials, "parallel": parallel, "seed": seed}
    try:  # the code as it is now: edits made during the sweep do not change later trials
        copy = actions.copy_code(project, project.output_dir)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    try:
        experiment = actions.do_create_experiment(
            project, user, kind=kind, description=description, spec=spec, config=defaults
        )
        actions.snapshot_code(experiment, copy)
    finally:
        if copy is not None and copy.exists():
            shutil.rmtree(copy, ignore_errors=True)
    # Unique across projects and re-created databases (the pk alone is not).
    spec["study"] = f"{project.slug}-exp{experiment.number}-{uuid.uuid4().hex[:8]}"
    Experiment.objects.filter(pk=experiment.pk).update(spec=spec)
    experiment.spec = spec
    studies.create_study(spec["study"], seed=seed)
    do_fill_sweep(experiment)
    return experiment


def _all_failed_reason(trials) -> str:
    """ "every trial failed" with the most common reason (by its first line) in full, from
    the first trial that gave it, so the sweep page says what to fix."""
    first_lines = [
        (t.failure_reason.strip().splitlines() or [""])[0] for t in trials.order_by("number")
    ]
    counts = collections.Counter(line for line in first_lines if line)
    if not counts:
        return "every trial failed"
    common, n = counts.most_common(1)[0]
    trial = trials.order_by("number")[first_lines.index(common)]
    share = f"all {n}" if n == len(first_lines) else f"{n} of {len(first_lines)}"
    share = f" ({share} the same way)" if len(first_lines) > 1 else ""
    return f"every trial failed{share}. Trial {trial.number}: {trial.failure_reason}"


def _counted(experiment: Experiment):
    """Trials that count towards ``n_trials`` (stopped ones are run again on resume)."""
    return experiment.trials.exclude(state=RunState.CANCELLED)


def do_fill_sweep(experiment: Experiment) -> list[Trial]:
    """Queue new trials while fewer than ``parallel`` are active and ``n_trials`` not reached.

    Returns:
        The trials queued by this call.
    """
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.state not in ACTIVE_STATES:
            return []
        active = experiment.trials.filter(state__in=ACTIVE_STATES).count()
        free = min(
            experiment.spec["parallel"] - active,
            experiment.spec["n_trials"] - _counted(experiment).count(),
        )
        if free <= 0:
            return []
        last = experiment.trials.aggregate(m=Max("number"))["m"]
        first = 0 if last is None else last + 1
        claimed = [
            Trial.objects.create(
                experiment=experiment, number=first + i, metadata={"needs_params": True}
            )
            for i in range(free)
        ]
    for trial in claimed:
        _launch(experiment, trial)
    return claimed


def _launch(experiment: Experiment, trial: Trial) -> None:
    """Ask the study for the trial's values, write its config.yaml and enqueue it."""
    space = stored_space(experiment)
    asked = studies.ask(_study(experiment, trial.number), space.distributions)
    params = space.readable(asked.params)
    config = space.trial_config(experiment.config, params)
    run_dir = trial.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / "config.yaml", _config_yaml(experiment, config))
    with transaction.atomic():
        metadata = {**trial.metadata, "optuna_trial": asked.number}
        metadata.pop("needs_params", None)
        updated = Trial.objects.filter(pk=trial.pk, state=RunState.QUEUED).update(
            params=params, metadata=metadata
        )
        trial.refresh_from_db()
        if updated:
            actions.do_enqueue_trial(trial)
            actions.send_event_on_commit(experiment.pk, events.trial_update(trial))
    if not updated:
        # Stopped between claim and ask: nothing will ever tell this ask, and TPE's constant
        # liar would count it as pending for the rest of the study.
        studies.tell(_study(experiment), asked.number, None, state=TrialState.FAIL)


def _config_yaml(experiment: Experiment, config: dict[str, Any]) -> str:
    """``config`` as text, with the comments of the config.yaml the sweep started from."""
    try:
        template = (experiment.output_dir / "code" / "config.yaml").read_text()
    except (OSError, UnicodeDecodeError):
        template = None
    return render_config(config, template)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def trial_objective(experiment: Experiment, trial: Trial) -> float | None:
    """The value told to the study: best epoch val loss (full) or Early Ranking score (fast)."""
    value = trial.score if experiment.is_fast else trial.best_val_loss
    if value is None or not math.isfinite(value):
        return None
    return value


def do_advance_sweep(experiment_id: int) -> None:
    """React to finished trials: tell the study, write outputs, refill, finish the sweep.

    Safe to call any number of times, from any process.
    """
    experiment = Experiment.objects.select_related("project").get(pk=experiment_id)
    # Filtered in Python: on SQLite, exclude(metadata__told=True) also drops rows without the key.
    finished = [
        t for t in experiment.trials.exclude(state__in=ACTIVE_STATES) if not t.metadata.get("told")
    ]
    for trial in finished:
        if not _retry_lost_trial(experiment, trial):
            _tell(experiment, trial)
    _sync_tuned_config(experiment)
    write_results_csv(experiment)
    do_fill_sweep(experiment)
    _finish_if_done(experiment)


def _retry_lost_trial(experiment: Experiment, trial: Trial) -> bool:
    """A trial failed because its worker died runs once more (same values, same config)."""
    if not (
        trial.state == RunState.FAILED
        and trial.failure_reason.startswith(LOST_WORKER_PREFIX)
        and trial.attempts <= LOST_WORKER_RETRIES
        and experiment.state in ACTIVE_STATES
    ):
        return False
    with transaction.atomic():
        metadata = {k: v for k, v in trial.metadata.items() if k != "history"}
        # The trials table says why it was retried ("lost worker: … died"): its reason clears.
        lost = trial.failure_reason.splitlines()[0].removeprefix(LOST_WORKER_PREFIX + ": ")
        metadata["retried_after"] = f"lost its worker ({lost})"[:300]
        # The retry starts from scratch: the lost attempt's rows would mix with the new ones.
        requeued = (
            Trial.objects.filter(pk=trial.pk, state=RunState.FAILED, attempts=trial.attempts)
            .exclude(metadata__has_key="told")
            .update(
                state=RunState.QUEUED,
                failure_reason="",
                finished_at=None,
                node=None,
                rows_stored=0,
                epochs_done=0,
                best_val_loss=None,
                score=None,
                metadata=metadata,
            )
        )
        if requeued:
            HistoryChunk.objects.filter(trial=trial).delete()
            TrialEpoch.objects.filter(trial=trial).delete()
            trial.refresh_from_db()
            actions.do_enqueue_trial(trial)
            actions.send_event_on_commit(experiment.pk, events.trial_update(trial))
    return bool(requeued)


def _tell(experiment: Experiment, trial: Trial) -> None:
    """Tell the study how the trial ended, once.

    Two advances can run at once (every worker takes ``default`` tasks, and a restarted
    worker reconciles in its main process), so the tell is claimed with a conditional
    update on the trial as this advance saw it: a trial requeued or told meanwhile is left
    alone.
    """
    value = trial_objective(experiment, trial) if trial.state == RunState.COMPLETE else None
    changes: dict[str, Any] = {"value": value, "metadata": {**trial.metadata, "told": True}}
    diverged = trial.state == RunState.COMPLETE and value is None
    if diverged:  # exit code 0 but the losses are nan/inf (or no epoch finished)
        changes.update(
            state=RunState.FAILED,
            failure_reason="diverged: no finite validation loss / Early Ranking score",
        )
    with transaction.atomic():
        claimed = (
            Trial.objects.filter(pk=trial.pk, state=trial.state, attempts=trial.attempts)
            .exclude(metadata__has_key="told")
            .update(**changes)
        )
        if not claimed:
            return
        trial.refresh_from_db()
        if diverged:
            actions.send_event_on_commit(experiment.pk, events.trial_update(trial))
        better = Q(best_value__isnull=True) | Q(best_value__gt=value)
        if value is not None and Experiment.objects.filter(better, pk=experiment.pk).update(
            best_value=value
        ):
            experiment.refresh_from_db()
            actions.send_event_on_commit(experiment.pk, events.experiment_update(experiment))
    optuna_number = trial.metadata.get("optuna_trial")
    if optuna_number is not None:  # outside the transaction: Optuna has its own connection
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        studies.tell(_study(experiment), optuna_number, value, state=state)


def _best_trial(experiment: Experiment) -> Trial | None:
    return (
        experiment.trials.filter(state=RunState.COMPLETE, value__isnull=False)
        .order_by("value", "number")
        .first()
    )


def tuned_config(experiment: Experiment, trial: Trial) -> dict[str, Any]:
    """The full config of ``trial``: what ``config-tuned.yaml`` holds."""
    return stored_space(experiment).trial_config(experiment.config, trial.params)


def write_tuned_config(experiment: Experiment, trial: Trial) -> Path:
    """(Re)write ``config-tuned.yaml`` in the sweep's output folder; same format as config.yaml."""
    path = experiment.output_dir / TUNED_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    objective = "Early Ranking score" if experiment.is_fast else "best validation loss"
    header = (
        f"# Tuned by {experiment.project.slug}/{experiment.name}: trial {trial.number}, "
        f"{objective} {trial.value:.6g}\n"
    )
    _write_atomic(path, header + _config_yaml(experiment, tuned_config(experiment, trial)))
    return path


def tuned_trial_number(experiment: Experiment) -> int | None:
    """The trial ``config-tuned.yaml`` was written from (its header), None if there is none."""
    try:
        with (experiment.output_dir / TUNED_CONFIG).open() as fh:
            match = re.search(r": trial (\d+),", fh.readline())
    except FileNotFoundError:
        return None
    return int(match.group(1)) if match else None


def _sync_tuned_config(experiment: Experiment) -> None:
    """Rewrite ``config-tuned.yaml`` when it is not the best trial's (a new best).

    A concurrent advance may tell a better trial between our query and our write, so the
    check runs again after each write: whoever writes last also checks last.
    """
    for _attempt in range(3):
        best = _best_trial(experiment)
        if best is None or tuned_trial_number(experiment) == best.number:
            return
        write_tuned_config(experiment, best)


def write_results_csv(experiment: Experiment) -> Path:
    """Rewrite ``sweep_results.csv``: one row per trial (number, state, params, value, ...).

    Read and written under the experiment's lock: an advance that read the trials before
    another one finished must not write its older table over the newer one.
    """
    with transaction.atomic():
        Experiment.objects.select_for_update().only("pk").get(pk=experiment.pk)
        return _write_results_csv(experiment)


def _write_results_csv(experiment: Experiment) -> Path:
    trials = list(experiment.trials.order_by("number"))
    names = sorted(stored_space(experiment).distributions)
    path = experiment.output_dir / RESULTS_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["number", "state", *names, "value", "score", "best_val_loss", "epochs", "seconds"]
        )
        for t in trials:
            seconds = t.duration.total_seconds() if t.duration else None
            writer.writerow(
                [
                    t.number,
                    t.state,
                    *(t.params.get(n, "") for n in names),
                    _cell(t.value),
                    _cell(t.score),
                    _cell(t.best_val_loss),
                    t.epochs_done,
                    _cell(seconds),
                ]
            )
    tmp.replace(path)
    return path


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _finish_if_done(experiment: Experiment) -> None:
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.state not in ACTIVE_STATES:
            return
        trials = _counted(experiment)
        if trials.count() < experiment.spec["n_trials"]:
            return
        if any(t.state in ACTIVE_STATES or not t.metadata.get("told") for t in trials):
            return
        # Queried here, not passed in: another advance may have told the best meanwhile.
        any_complete = _best_trial(experiment) is not None
        state = RunState.COMPLETE if any_complete else RunState.FAILED
        reason = "" if any_complete else _all_failed_reason(trials)
        Experiment.objects.filter(pk=experiment.pk).update(
            state=state, failure_reason=reason, finished_at=timezone.now()
        )
        experiment.refresh_from_db()
        actions.send_event_on_commit(experiment.pk, events.experiment_update(experiment))


def do_stop_sweep(experiment: Experiment) -> bool:
    """Stop a sweep: running and queued trials are cancelled; :func:`do_resume_sweep` goes on."""
    stopped = actions.do_cancel_experiment(experiment)
    if stopped:
        transaction.on_commit(lambda: _enqueue_advance(experiment.pk))
    return stopped


def do_resume_sweep(experiment: Experiment, *, add_trials: int = 0) -> Experiment:
    """Resume a stopped (or finished) sweep, optionally with ``add_trials`` more trials.

    Raises:
        SweepError: not a sweep, or the new total is out of range.
    """
    if not experiment.is_sweep:
        raise SweepError(f"{experiment}: only sweeps can be resumed")
    with transaction.atomic():
        # Re-read under the lock: two quick "Add trials" must both count.
        current = Experiment.objects.select_for_update().get(pk=experiment.pk)
        spec = {**current.spec, "n_trials": current.spec["n_trials"] + add_trials}
        _check_counts(spec["n_trials"], spec["parallel"])
        Experiment.objects.filter(pk=experiment.pk).update(
            spec=spec, state=RunState.RUNNING, finished_at=None, failure_reason=""
        )
        experiment.refresh_from_db()
        actions.send_event_on_commit(experiment.pk, events.experiment_update(experiment))
    do_advance_sweep(experiment.pk)
    return experiment


def _enqueue_advance(experiment_id: int) -> None:
    from sweeps.tasks import advance_sweep

    advance_sweep.apply_async((experiment_id,), queue="default")


def on_trial_finished(trial: Trial) -> None:
    """Hook for ``do_finish_trial``: advance the trial's sweep once the transaction commits."""
    if trial.experiment.is_sweep:
        experiment_id = trial.experiment_id
        transaction.on_commit(lambda: _enqueue_advance(experiment_id))


def do_reconcile_sweeps() -> int:
    """Re-drive active sweeps after a restart (lost queue messages, a lost advance task).

    Trials QUEUED with values are enqueued again (claiming is idempotent, so a duplicate
    message is harmless); trials claimed but never asked get their values; then each sweep
    advances. Returns the number of sweeps touched.
    """
    sweeps = Experiment.objects.filter(
        kind__in=(Experiment.Kind.SWEEP, Experiment.Kind.FAST_SWEEP), state__in=ACTIVE_STATES
    )
    count = 0
    for experiment in sweeps:
        for trial in experiment.trials.filter(state=RunState.QUEUED):
            if trial.metadata.get("needs_params"):
                _launch(experiment, trial)
            else:
                with transaction.atomic():
                    actions.do_enqueue_trial(trial)
        do_advance_sweep(experiment.pk)
        count += 1
    return count
