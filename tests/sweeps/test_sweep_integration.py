"""Sweeps end to end: real Redis, real Celery worker processes, real PyTorch trials."""

from __future__ import annotations

import csv
import io
import os
import re
import signal

import pytest
import yaml
from django.core.management import CommandError, call_command

from luminide.launcher import child_pids
from luminide.models import ComputeNode
from sweeps.models import Experiment, RunState, Trial
from sweeps.sweep import do_start_sweep
from tests.factories import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Tiny trials: a couple of epochs on a few hundred digits, a few seconds each.
TINY_FULL = "python ../code/train.py --epochs 2 --subset 300\n"
TINY_SLOW = "sleep 4\npython ../code/train.py --epochs 2 --subset 300\n"


def sweep_done(experiment):
    experiment.refresh_from_db()
    return experiment.state not in (RunState.QUEUED, RunState.RUNNING)


@pytest.fixture
def second_worker(start_worker):
    """Another worker, stopped after the test even when it fails (a worker left running
    would take the next tests' trials)."""
    worker = start_worker()
    yield worker
    worker.stop()


def test_two_workers_run_trials_in_parallel(project, celery_worker, second_worker):
    second = second_worker
    (project.code_dir / "full.sh").write_text(TINY_SLOW)
    exp = do_start_sweep(project, project.owner, n_trials=4, parallel=2, seed=0)

    wait_for(lambda: sweep_done(exp), 240, "the sweep to finish")
    assert exp.state == RunState.COMPLETE, exp.failure_reason
    trials = list(exp.trials.order_by("number"))
    assert [t.state for t in trials] == [RunState.COMPLETE] * 4, [t.failure_reason for t in trials]
    # Two trials ran at the same time, on two different workers.
    overlapping = [
        (a, b)
        for a in trials
        for b in trials
        if a.number < b.number and a.started_at < b.finished_at and b.started_at < a.finished_at
    ]
    assert overlapping, "no two trials overlapped in time"
    assert any(a.node_id != b.node_id for a, b in overlapping)
    assert {t.node.hostname for t in trials} <= {celery_worker.name, second.name}

    # Every trial trained with its own sampled config and stored its history.
    for trial in trials:
        config = yaml.safe_load((trial.run_dir / "config.yaml").read_text())
        assert {k: config[k] for k in trial.params} == trial.params
        assert trial.epochs_done == 2 and trial.rows_stored > 0
        assert trial.value == pytest.approx(trial.best_val_loss)

    best = min(trials, key=lambda t: t.value)
    tuned = yaml.safe_load((exp.output_dir / "config-tuned.yaml").read_text())
    assert tuned == {**exp.config, **best.params}
    with (exp.output_dir / "sweep_results.csv").open() as fh:
        assert [r["state"] for r in csv.DictReader(fh)] == ["complete"] * 4


@pytest.mark.parametrize("end", ["kill", "stop"])  # SIGKILL; SIGTERM, as a restart sends
def test_trial_of_a_killed_or_stopped_worker_is_retried_on_another(
    project, celery_worker, start_worker, end
):
    victim = start_worker(name=f"victim-{end}@localhost")
    (project.code_dir / "full.sh").write_text("sleep 20\n" + TINY_FULL)
    exp = do_start_sweep(project, project.owner, n_trials=2, parallel=2, seed=1)

    def running_on_victim():
        return (
            Trial.objects.filter(
                experiment=exp, state=RunState.RUNNING, node__hostname=victim.name
            ).first()
            or None
        )

    try:
        trial = wait_for(running_on_victim, 90, "a trial to start on the victim worker")
    finally:
        getattr(victim, end)()  # also when it never got a trial: it would take later ones

    # Killed: the heartbeat of the surviving worker marks it lost (test timeout 15 s). Stopped:
    # it fails the trial itself on the way out. Either way the sweep runs it once more, on the
    # surviving worker.
    wait_for(lambda: sweep_done(exp), 240, "the sweep to finish")
    trial.refresh_from_db()
    assert trial.state == RunState.COMPLETE, trial.failure_reason
    assert trial.attempts == 2
    assert trial.node.hostname == celery_worker.name
    assert ComputeNode.objects.get(hostname=victim.name).state == ComputeNode.State.OFFLINE
    assert exp.state == RunState.COMPLETE


def test_trial_whose_pool_process_was_killed_is_retried(project, celery_worker, start_worker):
    """The worker lives on and Celery replaces its pool child (SIGKILL, the OOM killer): the
    worker's heartbeat fails the trial as lost and the sweep runs it once more."""
    victim = start_worker(name="victim-child@localhost")
    (project.code_dir / "full.sh").write_text("sleep 20\n" + TINY_FULL)
    exp = do_start_sweep(project, project.owner, n_trials=2, parallel=2, seed=1)
    try:
        trial = wait_for(
            lambda: Trial.objects.filter(
                experiment=exp, state=RunState.RUNNING, node__hostname=victim.name
            ).first(),
            90,
            "a trial to start on the victim worker",
        )
        runner = trial.metadata["runner"]["pid"]  # the pool child that runs it
        assert runner in child_pids(victim.proc.pid)
        os.kill(runner, signal.SIGKILL)
        wait_for(lambda: sweep_done(exp), 240, "the sweep to finish")
    finally:
        victim.stop()
    trial.refresh_from_db()
    assert trial.state == RunState.COMPLETE, trial.failure_reason
    assert trial.attempts == 2
    assert exp.state == RunState.COMPLETE
    assert f"the process running it on {victim.name} died" in victim.output()
    # The trials table says why it was retried.
    assert trial.metadata["retried_after"].startswith(
        f"lost its worker (the process running it on {victim.name} died"
    )


def test_sweep_command_waits_and_reports_each_trial(project, celery_worker):
    (project.code_dir / "full.sh").write_text(TINY_FULL)
    out = io.StringIO()
    call_command(
        "sweep", "--project", project.slug, "--trials", "2", "--seed", "0",
        "--wait", "--timeout", "240", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    exp = Experiment.objects.get(project=project)
    assert f"{project.slug}/{exp.name}: sweep of 2 trials queued" in text
    assert re.search(r"^trial 0: complete value \d", text, re.M), text
    assert re.search(r"^trial 1: complete value \d", text, re.M), text
    assert f"{exp.name} complete; best objective {exp.best_value:.4g}" in text
    assert f"tuned config: {exp.output_dir / 'config-tuned.yaml'}" in text

    # An invalid sweep.yaml is refused with its line and parameter; nothing new starts.
    (project.code_dir / "sweep.yaml").write_text(
        "parameters:\n  lr: {distribution: log_uniform, min: 0.5, max: 0.01}\n"
    )
    with pytest.raises(CommandError, match=r"sweep.yaml line 2.*'lr'"):
        call_command("sweep", "--project", project.slug, "--trials", "2", stdout=out)
    with pytest.raises(CommandError, match="--project: no project 'missing'"):
        call_command("sweep", "--project", "missing", "--trials", "2")
    assert Experiment.objects.filter(project=project).count() == 1
