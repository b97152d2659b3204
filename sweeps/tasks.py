"""Celery tasks: thin adapters from ids to runner/actions."""

from __future__ import annotations

from celery import shared_task

from sweeps import nodes  # noqa: F401  (connects the worker signals: registration, heartbeat)


@shared_task(
    bind=True,
    name="sweeps.run_trial",
    queue="gpu",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_trial(self, trial_id: int) -> str | None:
    """Run one queued trial on this worker; a second delivery of the same trial is a no-op."""
    from sweeps.runner import run_trial as run

    return run(trial_id, hostname=self.request.hostname or "", task_id=self.request.id or "")
