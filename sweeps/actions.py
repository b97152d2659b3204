"""State changes that touch several models, and every live event.

Each ``do_*`` function runs in one transaction and emits its websocket events only after
that transaction commits (:func:`send_event_on_commit`), so a client never sees a state the
database does not have. Views, API handlers, tasks and management commands call these.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import os
import shutil
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import yaml
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Min
from django.utils import timezone

from luminide.models import ComputeNode, Project
from sweeps import events
from sweeps.history import (
    CHUNK_ROWS,
    HistoryArrays,
    chart_series,
    ema,
    encode_chunk,
    epoch_lengths,
    epoch_summaries,
    read_trial_history,
)
from sweeps.models import ACTIVE_STATES, Experiment, HistoryChunk, RunState, Trial, TrialEpoch

log = logging.getLogger(__name__)

#: A ``history.rows`` event carries at most this many rows; bigger batches say "re-sync".
MAX_EVENT_ROWS = 5_000
FINISHED_STATES = (RunState.COMPLETE, RunState.FAILED, RunState.CANCELLED, RunState.PRUNED)


# ---------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------


#: Seconds between two warnings about live events that could not be published.
PUBLISH_WARNING_SECONDS = 30.0
_publish_failures = {"logged_at": -math.inf, "unlogged": 0}
_publish_clock = time.monotonic  # a test's own clock, without touching the time module


def send_event_now(experiment_id: int, *events_: dict) -> None:
    """Publish ``events_`` to the experiment's group, in order, as one channel-layer message;
    delivery is best effort (at most once). The hop to the event loop and the Redis publish
    cost more than building the events, hence one of each for all of them.
    """
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None or not events_:
        return
    message = events_[0] if len(events_) == 1 else events.batch(list(events_))
    try:
        async_to_sync(layer.group_send)(events.group_name(experiment_id), message)
    except Exception as exc:  # never fail the caller over a hint: clients re-sync
        # Once per PUBLISH_WARNING_SECONDS: while Redis is down every history row fails.
        now = _publish_clock()
        if now - _publish_failures["logged_at"] < PUBLISH_WARNING_SECONDS:
            _publish_failures["unlogged"] += 1
            return
        log.warning(
            "could not publish %s to experiment %s: %r%s",
            ", ".join(e.get("type", "?") for e in events_),
            experiment_id,
            exc,
            f" (and {_publish_failures['unlogged']} more since the last warning)"
            if _publish_failures["unlogged"]
            else "",
        )
        _publish_failures.update(logged_at=now, unlogged=0)


def send_event_on_commit(experiment_id: int, *events_: dict) -> None:
    """The one way events leave the server: after the current transaction commits."""
    transaction.on_commit(lambda: send_event_now(experiment_id, *events_))


def _emit_trial(trial: Trial) -> None:
    send_event_on_commit(trial.experiment_id, events.trial_update(trial))


def _emit_experiment(experiment: Experiment) -> None:
    send_event_on_commit(experiment.pk, events.experiment_update(experiment))


# ---------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------


def _read_config(project: Project) -> dict:
    """The project's config.yaml as a dict, or {} when missing/invalid (the run reports it)."""
    try:
        loaded = yaml.safe_load((project.code_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _next_number(project: Project) -> int:
    """The next free expN: above every stored experiment and every existing output folder."""
    # Row lock on the project (PostgreSQL); SQLite's IMMEDIATE transactions already
    # serialise writers, so two concurrent starts cannot read the same maximum.
    Project.objects.select_for_update().filter(pk=project.pk).exists()
    db_max = project.experiments.aggregate(m=Max("number"))["m"] or 0
    disk_max = 0
    if project.output_dir.is_dir():
        for p in project.output_dir.iterdir():
            if p.name.startswith("exp") and p.name[3:].isdigit():
                disk_max = max(disk_max, int(p.name[3:]))
    return max(db_max, disk_max) + 1


def do_create_experiment(
    project: Project,
    user,
    *,
    kind: str = Experiment.Kind.TRAIN,
    description: str = "",
    spec: dict | None = None,
    config: dict | None = None,
) -> Experiment:
    """Create experiment ``expN`` (N allocated safely under concurrency); no trials, no task.

    Args:
        project: The project.
        user: Who starts it (or None).
        kind: An :class:`~sweeps.models.Experiment.Kind` value.
        description: Free text.
        spec: Kind-specific definition (sweep space, API body).
        config: The config it runs with; default: the project's ``code/config.yaml``.

    Returns:
        The new experiment, state QUEUED.
    """
    for attempt in range(5):
        try:
            with transaction.atomic():
                experiment = Experiment.objects.create(
                    project=project,
                    number=_next_number(project),
                    kind=kind,
                    description=description,
                    created_by=user if user is not None and user.is_authenticated else None,
                    config=_read_config(project) if config is None else config,
                    spec=spec or {},
                )
                _emit_experiment(experiment)
            return experiment
        except IntegrityError:
            # Another writer took the same number between our read and insert (only
            # possible without row locks); take the next one.
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def copy_code(project: Project, into: Path) -> Path | None:
    """Copy the project's ``code/`` to a new hidden folder in ``into``; None when the project
    has no code folder.

    Raises:
        ValueError: a file cannot be copied (named; nothing is left behind).
    """
    if not project.code_dir.is_dir():
        return None
    into.mkdir(parents=True, exist_ok=True)
    copy = into / f".code-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # Not the config backups "Use tuned config" leaves: they are not code the run uses, and
    # every code diff would list them.
    skipped = shutil.ignore_patterns("__pycache__", ".git", "config.yaml.bak-*")
    try:
        shutil.copytree(project.code_dir, copy, symlinks=True, ignore=skipped)
    except OSError as exc:
        shutil.rmtree(copy, ignore_errors=True)
        failures = exc.args[0] if isinstance(exc, shutil.Error) and exc.args else None
        if failures and isinstance(failures, list):
            source, _target, why = failures[0]
            name = os.path.relpath(source, project.code_dir)
            raise ValueError(f"code/{name}: cannot be copied for the run ({why})") from None
        raise ValueError(f"code/ cannot be copied for the run ({exc})") from None
    return copy


def snapshot_code(experiment: Experiment, copy: Path | None = None) -> Path | None:
    """Make ``copy`` (from :func:`copy_code`, else a copy made now) the experiment's code
    snapshot ``output/expN/code``, unless it has one (the first one stays); None when the
    project has no code folder.

    Raises:
        ValueError: a file cannot be copied.
    """
    snapshot = experiment.output_dir / "code"
    if not snapshot.is_dir():
        copy = copy or copy_code(experiment.project, experiment.output_dir)
        if copy is None:
            return None
        experiment.output_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            copy.rename(snapshot)  # atomic: parallel trials agree on one snapshot
    if copy is not None and copy.exists():
        shutil.rmtree(copy, ignore_errors=True)  # another snapshot was there first
    return snapshot if snapshot.is_dir() else None


def do_enqueue_trial(trial: Trial) -> None:
    """Queue ``run_trial`` for ``trial`` on the ``gpu`` queue once the transaction commits."""
    from sweeps.tasks import run_trial

    task_id = str(uuid.uuid4())
    Trial.objects.filter(pk=trial.pk).update(task_id=task_id)
    trial.task_id = task_id
    transaction.on_commit(lambda: run_trial.apply_async((trial.pk,), queue="gpu", task_id=task_id))


def check_run_files(project: Project, *, fast: bool = False, config: bool = True) -> None:
    """Raise ValueError unless the project's code has the script a run starts and (with
    ``config``) the config.yaml it reads: the runner would fail the run without them."""
    needed = [
        (project.code_dir / ("fast.sh" if fast else "full.sh"),
         f"{'Fast Training' if fast else 'Train'} runs it"),
        (project.code_dir / "config.yaml", "every run starts from its hyperparameters"),
    ]  # fmt: skip
    for path, why in needed[: 2 if config else 1]:
        if not path.is_file():
            raise ValueError(f"{path.name}: not found in the project's code/ ({path}); {why}")


def do_start_experiment(
    project: Project, user, *, fast: bool = False, description: str = ""
) -> Experiment:
    """Start a training run: experiment ``expN`` with trial 0, queued on the ``gpu`` queue.

    Args:
        project: The project whose ``code/`` runs.
        user: Who clicked Train (or None for headless use).
        fast: Run ``fast.sh`` instead of ``full.sh`` (kind FAST_TRAIN).
        description: Free text shown in the experiment list.

    Returns:
        The experiment (state QUEUED); the task is enqueued after commit.

    Raises:
        ValueError: the script it runs is not in the project's code, or a code file cannot
            be copied for the snapshot (nothing is created).
    """
    check_run_files(project, fast=fast)
    kind = Experiment.Kind.FAST_TRAIN if fast else Experiment.Kind.TRAIN
    # The code as it is now (edits made while the run waits in the queue are not in it),
    # copied before the transaction: a big code folder must not hold the database lock.
    copy = copy_code(project, project.output_dir)
    try:
        with transaction.atomic():
            experiment = do_create_experiment(project, user, kind=kind, description=description)
            snapshot_code(experiment, copy)
            trial = Trial.objects.create(experiment=experiment, number=0)
            do_enqueue_trial(trial)
            _emit_trial(trial)
    finally:
        if copy is not None and copy.exists():
            shutil.rmtree(copy, ignore_errors=True)
    return experiment


def do_requeue_single_runs() -> int:
    """Enqueue queued Train / Fast Training runs again: their message may have gone with a
    restarted Redis. A second delivery is dropped when the trial is claimed. Returns how many.

    Sweeps re-drive their own trials (:func:`sweeps.sweep.do_reconcile_sweeps`).
    """
    queued = Trial.objects.filter(
        state=RunState.QUEUED,
        experiment__kind__in=(Experiment.Kind.TRAIN, Experiment.Kind.FAST_TRAIN),
    )
    count = 0
    for trial in queued:
        with transaction.atomic():
            do_enqueue_trial(trial)
        count += 1
    return count


def do_cancel_experiment(experiment: Experiment, user=None) -> bool:
    """Cancel an experiment and its queued/running trials.

    A running trial's runner sees the CANCELLED state within a second and stops the
    process group; a queued task finds nothing to claim.

    Returns:
        False when the experiment had already finished.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = Experiment.objects.filter(pk=experiment.pk, state__in=ACTIVE_STATES).update(
            state=RunState.CANCELLED, finished_at=now, failure_reason=""
        )
        trials = list(experiment.trials.filter(state__in=ACTIVE_STATES))
        for trial in trials:
            if _transition(trial, ACTIVE_STATES, RunState.CANCELLED, reason="", now=now):
                _emit_trial(trial)
        experiment.refresh_from_db()
        if changed:
            _emit_experiment(experiment)
    return bool(changed)


def do_update_experiment_description(experiment: Experiment, description: str) -> None:
    """Set the free-text description shown in the experiment list (at most 500 characters)."""
    with transaction.atomic():
        experiment.description = description.strip()[:500]
        experiment.save(update_fields=["description"])
        _emit_experiment(experiment)


def do_delete_experiment(experiment: Experiment) -> None:
    """Delete an experiment: cancel it if active, then its rows, Optuna study and outputs.

    A runner whose trial row disappears stops its process within a second (it checks the
    trial's state) and finishes quietly.
    """
    import shutil

    from sweeps import studies

    do_cancel_experiment(experiment)
    study = (experiment.spec or {}).get("study")
    output = experiment.output_dir
    experiment.delete()
    if study:
        studies.delete_study(study)
    if output.is_dir() and not output.is_symlink():
        shutil.rmtree(output, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Trials
# ---------------------------------------------------------------------------------------


def _transition(trial: Trial, from_states, to_state: str, *, reason: str, now=None) -> bool:
    """Conditional UPDATE of one trial's state; refreshes ``trial``. True if it changed.

    Only the attempt ``trial`` was loaded at changes: a runner whose trial was meanwhile
    retried (re-queued, claimed again) cannot finish the new attempt.
    """
    now = now or timezone.now()
    changed = Trial.objects.filter(
        pk=trial.pk, state__in=from_states, attempts=trial.attempts
    ).update(state=to_state, failure_reason=reason[:10_000], finished_at=now)
    trial.refresh_from_db()
    return bool(changed)


def do_claim_trial(trial_id: int, *, hostname: str = "", task_id: str = "") -> Trial | None:
    """Claim a QUEUED trial for this worker (idempotent: a second delivery gets None).

    Sets RUNNING, start time and node; the node becomes busy and a queued single-run
    experiment becomes RUNNING.
    """
    now = timezone.now()
    node = None
    if hostname:
        # A task can arrive before the worker's registration finished: create the row.
        node, _ = ComputeNode.objects.get_or_create(hostname=hostname, defaults={"device": "CPU"})
    with transaction.atomic():
        claimed = Trial.objects.filter(pk=trial_id, state=RunState.QUEUED).update(
            state=RunState.RUNNING,
            started_at=now,
            finished_at=None,
            node=node,
            attempts=F("attempts") + 1,
            # Who runs it: the worker's heartbeat checks that process is still alive.
            metadata=_metadata_with(
                trial_id,
                host=socket.gethostname(),
                runner={"machine": machine_id(), "worker": os.getppid(), "pid": os.getpid()},
            ),
        )
        if not claimed:
            return None
        trial = Trial.objects.select_related("experiment__project", "node").get(pk=trial_id)
        if node is not None:
            ComputeNode.objects.filter(pk=node.pk).update(state=ComputeNode.State.BUSY)
        exp_changed = Experiment.objects.filter(
            pk=trial.experiment_id, state=RunState.QUEUED
        ).update(state=RunState.RUNNING, started_at=now)
        _emit_trial(trial)
        if exp_changed:
            trial.experiment.refresh_from_db()
            _emit_experiment(trial.experiment)
    return trial


def _metadata_with(trial_id: int, **extra) -> dict:
    current = Trial.objects.filter(pk=trial_id).values_list("metadata", flat=True).first() or {}
    return {**current, **extra}


def do_finish_trial(
    trial: Trial, state: str, *, reason: str = "", from_states=ACTIVE_STATES
) -> bool:
    """Finish a running (or queued) trial: COMPLETE, FAILED, CANCELLED or PRUNED.

    Closes a still-open last epoch (files without epoch-end rows), frees the node, and
    for single runs (kinds TRAIN, FAST_TRAIN) finishes the experiment with the same state.
    Conditional: a trial already finished (e.g. cancelled, or failed as lost) keeps its
    state and this returns False. The runner passes ``from_states=(RUNNING,)``: a trial
    re-queued for a retry is not its to finish.
    """
    if state not in FINISHED_STATES:
        raise ValueError(f"state: {state!r} is not a finished state")
    now = timezone.now()
    with transaction.atomic():
        if not _transition(trial, from_states, state, reason=reason, now=now):
            return False
        _close_open_epoch(trial)
        _free_node(trial.node_id)
        _emit_trial(trial)
        _finish_single_run_experiment(trial, now)
        if trial.experiment.is_sweep:
            from sweeps.sweep import on_trial_finished

            on_trial_finished(trial)
    return True


def _finish_single_run_experiment(trial: Trial, now) -> None:
    experiment = trial.experiment
    if experiment.kind not in (Experiment.Kind.TRAIN, Experiment.Kind.FAST_TRAIN):
        return  # sweeps and API experiments decide their own state
    changed = Experiment.objects.filter(pk=experiment.pk, state__in=ACTIVE_STATES).update(
        state=trial.state,
        failure_reason=trial.failure_reason,
        finished_at=now,
        best_value=trial.best_val_loss,
    )
    if changed:
        experiment.refresh_from_db()
        _emit_experiment(experiment)


def do_release_node(node_id: int | None) -> None:
    """The runner is done with its trial (any outcome): the node is idle unless it runs
    another trial. Cancellation and lost verdicts change the trial without the runner, so
    the runner calls this once its process group is gone."""
    _free_node(node_id)


def _free_node(node_id: int | None) -> None:
    if node_id is None:
        return
    still_busy = Trial.objects.filter(node_id=node_id, state=RunState.RUNNING).exists()
    if not still_busy:
        ComputeNode.objects.filter(pk=node_id, state=ComputeNode.State.BUSY).update(
            state=ComputeNode.State.IDLE
        )


def do_publish_log_lines(trial: Trial, *, offset: int, cursor: int, lines: list[str]) -> None:
    """Stream lines just appended to the trial's ``log.txt`` (bytes ``offset``..``cursor``)."""
    if lines:
        send_event_on_commit(
            trial.experiment_id, events.log_lines(trial, offset=offset, cursor=cursor, lines=lines)
        )


# ---------------------------------------------------------------------------------------
# History ingestion
# ---------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    rows: int = 0
    cursor: int = 0
    warnings: list[str] = field(default_factory=list)
    completed_epochs: list[int] = field(default_factory=list)


def history_meta(trial: Trial) -> dict:
    """Ingestion state kept in ``trial.metadata["history"]``."""
    return dict((trial.metadata or {}).get("history") or {})


def do_ingest_history(trial: Trial, source, *, line_offset: int = 0) -> IngestResult:
    """Parse and store new ``history.csv`` rows of a trial; update epochs and scores.

    Args:
        trial: The trial the rows belong to.
        source: CSV text or UTF-8 bytes (the header line plus new complete lines), or a
            DataFrame from :func:`ranking.read_history`; text is read with
            ``read_history(errors="skip")``, the rule ``python -m ranking score`` follows too
            (a bad line costs that line, not the batch; bytes that are not UTF-8 are
            replaced).
        line_offset: Data lines of the file before these (so warnings name file lines).

    Returns:
        Rows stored, the new cursor, warnings for skipped malformed rows (the caller writes
        them to the experiment log) and the epochs completed by these rows.

    Raises:
        ValueError: The header is unusable (no rows are stored).
    """
    if isinstance(source, str | bytes):
        from ranking import read_history

        buffer = io.BytesIO(source) if isinstance(source, bytes) else io.StringIO(source)
        df = read_history(buffer, errors="skip", line_offset=line_offset)
    else:
        df = source
    result = IngestResult(warnings=list(df.attrs.get("warnings", [])))
    if len(df) == 0:
        result.cursor = trial.rows_stored
        return result
    # Load the ranker (LightGBM import, model file) before the transaction takes SQLite's
    # write lock: heartbeats and other trials must not wait on it.
    _get_ranker()

    with transaction.atomic():
        # Lock the trial row: ingest for one trial is serialised (PostgreSQL; SQLite locks
        # the database for the transaction anyway).
        trial = Trial.objects.select_for_update().select_related("experiment").get(pk=trial.pk)
        first_seq = trial.rows_stored
        rows = HistoryArrays.from_frame(df, first_seq=first_seq)
        meta = history_meta(trial)
        _store_chunks(trial, rows)
        n = len(rows)
        result.rows = n
        result.cursor = first_seq + n

        # Chart state for events of later batches.
        lengths = {int(k): v for k, v in meta.get("epoch_lengths", {}).items()}
        first_epoch = meta.get("first_epoch", int(rows.epoch.min()))
        chart = None
        if n <= MAX_EVENT_ROWS:
            chart = chart_series(
                rows, first_epoch=first_epoch, lengths=lengths, smooth_seed=meta.get("train_ema")
            )
            smooth_last = chart.pop("smooth_last")
        else:
            t = rows.train_loss[~rows.end_mask]
            # Only the newest smoothed value is kept. An older value's weight in it decays by
            # 1 - 2 / (span + 1) per value, below 1e-80 after 2,000: smoothing those is enough.
            t = t[np.isfinite(t)][-2_000:]
            smooth_last = float(ema(t, seed=meta.get("train_ema"))[-1]) if len(t) else None
        for e, m in epoch_lengths(rows).items():
            lengths[e] = max(m, lengths.get(e, 0.0))
        keep = sorted(lengths)[-2:]
        meta.update(
            first_epoch=first_epoch,
            step_column=rows.step_column,
            epoch_lengths={str(e): lengths[e] for e in keep},
        )
        if smooth_last is not None:
            meta["train_ema"] = smooth_last

        # Completed epochs: those with an epoch-end row, or (files without end rows) every
        # epoch before the newest one seen.
        has_end = bool(meta.get("has_end_rows")) or bool(rows.end_mask.any())
        meta["has_end_rows"] = has_end
        if has_end:
            completed = sorted(set(rows.epoch[rows.end_mask].tolist()))
        else:
            seen = set(np.unique(rows.epoch).tolist())
            if "open_epoch" in meta:
                seen.add(meta["open_epoch"])
            newest = int(rows.epoch.max())
            completed = sorted(e for e in seen if e < newest)
            meta["open_epoch"] = newest
        result.completed_epochs = completed

        trial.metadata = {**(trial.metadata or {}), "history": meta}
        trial.rows_stored = result.cursor
        fields = ["rows_stored", "metadata"]
        if completed:
            # The batch holds every row of the completed epochs when it starts before them.
            own = rows if first_seq == 0 or int(rows.epoch[0]) < min(completed) else None
            _store_epochs(trial, completed, rows=own)
            fields += ["epochs_done", "best_val_loss", "score"]
        trial.save(update_fields=fields)
        if completed:
            _update_single_run_best(trial)

        send_event_on_commit(
            trial.experiment_id,
            events.history_rows(
                trial,
                after=first_seq,
                cursor=result.cursor,
                chart=chart,
                step_column=rows.step_column,
            ),
        )
        if completed:
            _emit_trial(trial)
    return result


def _store_chunks(trial: Trial, rows: HistoryArrays) -> None:
    params = []
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows.slice(slice(start, start + CHUNK_ROWS))
        params.append(
            (
                trial.pk,
                int(part.seq[0]),
                len(part),
                int(part.epoch.min()),
                int(part.epoch.max()),
                encode_chunk(part),
            )
        )
    # A raw DB-API cursor on Django's connection (same transaction): with DEBUG on, Django's
    # debug cursor would render every blob as SQL text and keep it in connection.queries
    # (seconds per million rows, and memory growing in a long-lived worker).
    table = connection.ops.quote_name(HistoryChunk._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(c)
        for c in ("trial_id", "first_seq", "row_count", "first_epoch", "last_epoch", "data")
    )
    placeholder = "?" if connection.vendor == "sqlite" else "%s"
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join([placeholder] * 6)})"
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _db_float(v: float) -> float | None:
    return None if math.isnan(v) else v


def _store_epochs(trial: Trial, completed: list[int], rows: HistoryArrays | None = None) -> None:
    """Per-epoch summaries of ``completed`` epochs; Early Ranking score of the last one."""
    # A batch from the first row holds the whole prefix: score it without reading it back.
    whole = rows if rows is not None and rows.seq[0] == 0 else None
    if rows is None:
        rows = read_trial_history(trial, min_epoch=min(completed))
    summaries = epoch_summaries(rows, completed)
    now = timezone.now()
    TrialEpoch.objects.bulk_create(
        [
            TrialEpoch(
                trial=trial, epoch=e, train_loss=_db_float(t), val_loss=_db_float(v), created_at=now
            )
            for e, (t, v) in summaries.items()
        ],
        update_conflicts=True,
        unique_fields=["trial", "epoch"],
        update_fields=["train_loss", "val_loss"],
    )
    # One read may complete several epochs (short epochs, a worker catching up): each gets
    # its score, so the Early Ranking chart has no gaps.
    scores = _score_epochs(trial, completed, whole)
    if scores:
        stored = list(TrialEpoch.objects.filter(trial=trial, epoch__in=list(scores)))
        for row in stored:
            row.score = _db_float(scores[row.epoch])
        TrialEpoch.objects.bulk_update(stored, ["score"])
        trial.score = _db_float(scores[max(completed)])
    agg = trial.epochs.aggregate(best=Min("val_loss"))
    trial.best_val_loss = agg["best"]
    trial.epochs_done = trial.epochs.count()


def _update_single_run_best(trial: Trial) -> None:
    experiment = trial.experiment
    if experiment.kind in (Experiment.Kind.TRAIN, Experiment.Kind.FAST_TRAIN):
        Experiment.objects.filter(pk=experiment.pk).update(best_value=trial.best_val_loss)


def _close_open_epoch(trial: Trial) -> None:
    """At the end of a run, a file without epoch-end rows completes its last epoch."""
    meta = history_meta(trial)
    if meta.get("has_end_rows") or "open_epoch" not in meta:
        return
    _store_epochs(trial, [meta.pop("open_epoch")])
    trial.metadata = {**(trial.metadata or {}), "history": meta}
    trial.save(update_fields=["metadata", "epochs_done", "best_val_loss", "score"])
    _update_single_run_best(trial)


#: Seconds before a process that found no ranker model looks for it again.
RANKER_RETRY_SECONDS = 60.0
_ranker_state: dict = {"ranker": None, "checked": -math.inf}


def _get_ranker():
    """The shipped EarlyRanker (loaded once per process), or None while it has no model.

    A missing model is looked for again after ``RANKER_RETRY_SECONDS``, so a worker started
    before the model was installed picks it up without a restart.
    """
    state = _ranker_state
    if state["ranker"] is None and time.monotonic() - state["checked"] > RANKER_RETRY_SECONDS:
        state["checked"] = time.monotonic()
        try:
            from ranking import EarlyRanker

            state["ranker"] = EarlyRanker.load()
        except (ImportError, OSError) as exc:  # library or model file not shipped yet
            log.info("Early Ranking disabled: %s", exc)
    return state["ranker"]


#: Rows the ranker reads for one batch of completed epochs (each epoch's score reads its
#: whole prefix). A bulk ingest of a long file scores fewer of its epochs, evenly spread.
MAX_SCORED_ROWS = 2_000_000


def _score_epochs(
    trial: Trial, epochs: list[int], rows: HistoryArrays | None = None
) -> dict[int, float]:
    """Early Ranking score of the trial's history up to each of ``epochs`` (the newest
    always included), from all stored rows, or ``rows`` when the caller holds them from the
    first row on. Empty without a ranker or when it fails."""
    ranker = _get_ranker()
    if ranker is None:
        return {}
    if rows is None:
        rows = read_trial_history(trial)
    if rows.epoch.max() > max(epochs):
        rows = rows.slice(rows.epoch <= max(epochs))
    wanted = sorted(set(epochs))
    room = max(1, MAX_SCORED_ROWS // max(1, len(rows.epoch)))
    if len(wanted) > room:
        picks = np.linspace(len(wanted) - 1, 0, room).round().astype(int)  # newest first
        wanted = [wanted[i] for i in sorted(set(picks.tolist()))]
    try:
        frames = [rows.slice(rows.epoch <= e).to_frame() for e in wanted]
        return dict(zip(wanted, map(float, ranker.score_many(frames)), strict=True))
    except Exception:  # a ranker bug must not break ingestion; the scores stay empty
        log.exception("Early Ranking failed for %s epochs %s", trial, wanted)
        return {}


# ---------------------------------------------------------------------------------------
# Compute nodes
# ---------------------------------------------------------------------------------------


def do_register_node(
    hostname: str,
    *,
    device: str | None = None,
    device_memory_mb: int | None = None,
    gpu_count: int = 0,
) -> ComputeNode:
    """A worker started: create/refresh its node row (idle, fresh heartbeat).

    Trials still RUNNING on a node of this name that started before now belong to its
    previous process, which is gone: they fail as lost. ``device=None`` keeps the device
    recorded before (the worker probes it in the background, see :func:`do_register_device`).
    """
    now = timezone.now()
    defaults: dict = {"state": ComputeNode.State.IDLE, "started_at": now, "last_heartbeat": now}
    if device is not None:
        defaults.update(device=device, device_memory_mb=device_memory_mb, gpu_count=gpu_count)
    with transaction.atomic():
        node, _ = ComputeNode.objects.update_or_create(
            hostname=hostname,
            defaults=defaults,
            create_defaults={**defaults, "device": device or "CPU"},
        )
        previous = Trial.objects.filter(node=node, state=RunState.RUNNING, started_at__lt=now)
        for trial in previous.select_related("experiment"):
            _fail_lost_trial(trial, f"lost worker: {hostname} restarted while the trial ran")
    return node


def do_register_device(
    hostname: str, *, device: str, device_memory_mb: int | None = None, gpu_count: int = 0
) -> None:
    """Record what a node computes on: CUDA device name and memory (MiB), or "CPU"."""
    ComputeNode.objects.filter(hostname=hostname).update(
        device=device, device_memory_mb=device_memory_mb, gpu_count=gpu_count
    )


def do_heartbeat_node(hostname: str) -> None:
    """Record a heartbeat; a node marked offline by mistake comes back."""
    now = timezone.now()
    ComputeNode.objects.filter(hostname=hostname).update(last_heartbeat=now)
    ComputeNode.objects.filter(hostname=hostname, state=ComputeNode.State.OFFLINE).update(
        state=ComputeNode.State.IDLE
    )


def do_node_offline(hostname: str) -> None:
    """A worker shut down cleanly."""
    ComputeNode.objects.filter(hostname=hostname).update(state=ComputeNode.State.OFFLINE)


def do_mark_lost_nodes(now=None) -> list[str]:
    """Nodes silent for ``LUMINIDE_NODE_TIMEOUT_SECONDS`` go offline; their trials fail.

    Called from every worker's heartbeat loop and at worker start, so a worker killed with
    SIGKILL has its trials FAILED ("lost worker") within the timeout plus one heartbeat.

    Returns:
        Hostnames marked offline.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.LUMINIDE_NODE_TIMEOUT_SECONDS)
    lost: list[str] = []
    with transaction.atomic():
        stale = ComputeNode.objects.filter(last_heartbeat__lt=cutoff).exclude(
            state=ComputeNode.State.OFFLINE
        )
        for node in stale:
            if ComputeNode.objects.filter(pk=node.pk, last_heartbeat__lt=cutoff).update(
                state=ComputeNode.State.OFFLINE
            ):
                lost.append(node.hostname)
        # Only trials on a silent node: API training runs are RUNNING without a node.
        orphans = Trial.objects.filter(
            state=RunState.RUNNING,
            node__state=ComputeNode.State.OFFLINE,
            node__last_heartbeat__lt=cutoff,
        )
        for trial in orphans.select_related("experiment", "node"):
            where = trial.node.hostname if trial.node else "an unknown node"
            _fail_lost_trial(
                trial,
                f"lost worker: {where} stopped sending heartbeats "
                f"(none for {settings.LUMINIDE_NODE_TIMEOUT_SECONDS} s)",
            )
    return lost


def do_fail_trials_of_dead_runners(hostname: str) -> list[Trial]:
    """Fail (a sweep retries them once) this worker's RUNNING trials whose runner process
    died: a pool child killed by SIGKILL or the OOM killer. Celery starts a new child and
    drops the task's redelivery (the trial is no longer QUEUED), and the worker keeps sending
    heartbeats, so without this check such a trial would stay RUNNING for ever.

    Called from the worker's heartbeat (its main process, the parent of the pool children).

    Returns:
        The trials failed.
    """
    from luminide.launcher import child_pids, process_alive

    if not Path("/proc").is_dir():  # Linux only: the pool children are looked up in /proc
        return []
    me, machine = os.getpid(), machine_id()
    running = Trial.objects.filter(state=RunState.RUNNING, node__hostname=hostname)
    failed, children = [], None
    for trial in running.select_related("experiment", "node"):
        runner = (trial.metadata or {}).get("runner") or {}
        # Only this worker's pool children: not another worker that shares the node name,
        # nor a solo pool (the runner is this process; its parent is not).
        if runner.get("machine") != machine or runner.get("worker") != me:
            continue
        pid = runner.get("pid")
        children = child_pids(me) if children is None else children
        if pid not in children or not process_alive(pid):  # gone, or a zombie not reaped yet
            reason = f"lost worker: the process running it on {hostname} died (pid {pid})"
            if _fail_lost_trial(trial, reason, from_states=(RunState.RUNNING,)):
                failed.append(trial)
    return failed


@functools.cache
def machine_id() -> str:
    """This machine and pid namespace (pids compare only within one): the boot id and the
    namespace's inode, or the host name where ``/proc`` is missing."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def _fail_lost_trial(
    trial: Trial, reason: str, from_states: tuple[str, ...] = ACTIVE_STATES
) -> bool:
    meta = trial.metadata or {}
    pid = trial.pid
    runner = meta.get("runner") or {}
    here = (
        runner.get("machine") == machine_id()
        if runner
        else meta.get("host") == socket.gethostname()
    )
    if not do_finish_trial(trial, RunState.FAILED, reason=reason, from_states=from_states):
        return False
    log.warning("%s: %s", trial, reason)
    if pid and here:
        # The training process outlives its dead worker (own process group): stop it.
        transaction.on_commit(lambda: _kill_group(pid))
    return True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
