"""Celery tasks: thin adapters from ids to runner/actions."""

from __future__ import annotations

import logging

from celery import shared_task

from sweeps import nodes  # noqa: F401  (connects the worker signals: registration, heartbeat)

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="sweeps.run_trial",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_trial(self, trial_id: int) -> str | None:
    """Run one queued trial on this worker; a second delivery of the same trial is a no-op.

    Enqueue it with :func:`sweeps.actions.do_enqueue_trial` (queue ``gpu``, after commit).
    """
    from sweeps.runner import run_trial as run

    return run(trial_id, hostname=self.request.hostname or "", task_id=self.request.id or "")


@shared_task(name="sweeps.advance_sweep", acks_late=True, ignore_result=True)
def advance_sweep(experiment_id: int) -> None:
    """Tell the study about finished trials, write the sweep's outputs, queue more trials."""
    from sweeps.models import Experiment
    from sweeps.sweep import do_advance_sweep

    try:
        do_advance_sweep(experiment_id)
    except Experiment.DoesNotExist:
        logger.warning("advance_sweep: experiment %s no longer exists", experiment_id)
