"""The sweep engine, driven directly (no worker): ask, tell, outputs, retries, stop/resume,
concurrent advances, a Redis restart.

Trials are finished by hand with ``do_finish_trial`` after storing the value the runner
would have stored; the real worker path is covered in ``test_sweep_integration.py``.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
import yaml
from django.contrib.auth.models import User

from luminide.models import Project
from sweeps import actions, studies, sweep
from sweeps.models import ACTIVE_STATES, Experiment, RunState, Trial
from sweeps.nodes import reconcile_after_redis_restart
from sweeps.search_space import YamlFileError
from sweeps.sweep import (
    SweepError,
    do_advance_sweep,
    do_fill_sweep,
    do_resume_sweep,
    do_start_sweep,
    do_stop_sweep,
)

SWEEP_YAML = """\
parameters:
  lr:      {distribution: log_uniform, min: 0.0001, max: 0.1}
  arch:    {values: [small, wide]}
  batch:   {distribution: q_uniform, min: 8, max: 64, q: 8}
"""
CONFIG_YAML = "lr: 0.01\narch: small\nbatch: 32\nseed: 3\n"


@pytest.fixture(scope="module")
def optuna_storage(tmp_path_factory):
    """One Optuna database for the module: creating its tables costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.sqlite3'}"


@pytest.fixture
def project(tmp_path, settings, monkeypatch, optuna_storage):
    settings.LUMINIDE_DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("LUMINIDE_OPTUNA_STORAGE", optuna_storage)
    owner = User.objects.create_user("owner", password="pw")
    project = Project.objects.create(slug="p", name="P", owner=owner)
    project.code_dir.mkdir(parents=True)
    (project.code_dir / "sweep.yaml").write_text(SWEEP_YAML)
    (project.code_dir / "config.yaml").write_text(CONFIG_YAML)
    (project.code_dir / "full.sh").write_text("python ../code/train.py --epochs 10\n")
    (project.code_dir / "fast.sh").write_text("python ../code/train.py --epochs 2\n")
    return project


def finish(trial: Trial, *, best_val_loss=None, score=None, state=RunState.COMPLETE, reason=""):
    """What the runner does at the end of a trial: values stored, then do_finish_trial."""
    trial.refresh_from_db()
    Trial.objects.filter(pk=trial.pk).update(
        state=RunState.RUNNING, best_val_loss=best_val_loss, score=score
    )
    trial.refresh_from_db()
    assert actions.do_finish_trial(trial, state, reason=reason)


def queued(experiment):
    return list(experiment.trials.filter(state=RunState.QUEUED).order_by("number"))


@pytest.mark.django_db
def test_start_queues_parallel_trials_with_full_configs(project):
    exp = do_start_sweep(project, None, n_trials=5, parallel=2, seed=1)
    assert exp.kind == Experiment.Kind.SWEEP and exp.config["seed"] == 3
    trials = queued(exp)
    assert [t.number for t in trials] == [0, 1]
    for trial in trials:
        assert trial.task_id, "enqueued"
        config = yaml.safe_load((trial.run_dir / "config.yaml").read_text())
        assert config == {**exp.config, **trial.params}
        assert 1e-4 <= config["lr"] <= 0.1 and config["batch"] % 8 == 0
        # Written readably (6 significant digits), and the trial reports what it ran with.
        assert config["lr"] == float(f"{config['lr']:.6g}")
        assert "lr: " + repr(config["lr"]) in (trial.run_dir / "config.yaml").read_text()
        assert trial.run_dir == exp.output_dir / f"trial{trial.number}"
    # The code is frozen at start: later edits do not reach the trials.
    assert (exp.output_dir / "code" / "sweep.yaml").read_text() == SWEEP_YAML
    study = studies.load_study(exp.spec["study"])
    assert len(study.trials) == 2


@pytest.mark.django_db
def test_invalid_sweep_yaml_starts_nothing(project):
    (project.code_dir / "sweep.yaml").write_text(
        "parameters:\n  lr: {distribution: log_uniform, min: 0.1, max: 0.01}\n"
    )
    with pytest.raises(YamlFileError, match=r"sweep\.yaml line 2: parameter 'lr'"):
        do_start_sweep(project, None, n_trials=3)
    (project.code_dir / "sweep.yaml").unlink()
    with pytest.raises(YamlFileError, match=r"sweep\.yaml: not found"):
        do_start_sweep(project, None, n_trials=3)
    with pytest.raises(SweepError, match="trials: must be between"):
        do_start_sweep(project, None, n_trials=0)
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_finished_trials_are_told_and_outputs_follow_the_best(project):
    exp = do_start_sweep(project, None, n_trials=4, parallel=2, seed=2)
    first, second = queued(exp)
    finish(first, best_val_loss=0.5)
    finish(second, best_val_loss=0.3)
    do_advance_sweep(exp.pk)
    exp.refresh_from_db()
    assert exp.best_value == pytest.approx(0.3)
    tuned = yaml.safe_load((exp.output_dir / "config-tuned.yaml").read_text())
    second.refresh_from_db()
    assert tuned == {**exp.config, **second.params}
    assert second.value == pytest.approx(0.3)

    study = studies.load_study(exp.spec["study"])
    assert sorted(t.value for t in study.trials if t.value is not None) == [0.3, 0.5]

    # Two more were queued to refill the slots; finishing them completes the sweep.
    third, fourth = queued(exp)
    assert (third.number, fourth.number) == (2, 3)
    finish(third, best_val_loss=0.9)
    finish(fourth, state=RunState.FAILED, reason="Traceback: boom")
    do_advance_sweep(exp.pk)
    do_advance_sweep(exp.pk)  # idempotent: nothing told twice
    exp.refresh_from_db()
    assert exp.state == RunState.COMPLETE
    assert exp.trials.count() == 4

    with (exp.output_dir / "sweep_results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[1]["value"] == "0.3" and rows[3]["state"] == "failed"
    assert set(rows[0]) >= {"lr", "arch", "batch", "value", "score", "epochs"}
    study = studies.load_study(exp.spec["study"])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]


@pytest.mark.django_db
def test_trial_and_tuned_configs_keep_the_comments_of_config_yaml(project):
    (project.code_dir / "config.yaml").write_text(
        "# model\narch: small   # small | wide\nlr: 0.01\nbatch: 32\nseed: 3  # fixed\n"
    )
    exp = do_start_sweep(project, None, n_trials=1, seed=4)
    (trial,) = queued(exp)
    finish(trial, best_val_loss=0.5)
    do_advance_sweep(exp.pk)
    trial.refresh_from_db()
    tuned = (exp.output_dir / "config-tuned.yaml").read_text()
    assert tuned.startswith(f"# Tuned by {project.slug}/{exp.name}: trial 0,")
    assert f"\narch: {trial.params['arch']}   # small | wide\n" in tuned
    assert "# model\n" in tuned and "\nseed: 3  # fixed\n" in tuned
    assert yaml.safe_load(tuned) == {"seed": 3, **trial.params}
    assert (trial.run_dir / "config.yaml").read_text() in tuned  # the trial's own, as it ran


@pytest.mark.django_db
def test_fast_sweep_ranks_by_early_ranking_score(project):
    exp = do_start_sweep(project, None, n_trials=2, parallel=2, fast=True, seed=0)
    assert exp.kind == Experiment.Kind.FAST_SWEEP
    a, b = queued(exp)
    # b has the lower val loss so far, but a is predicted to finish better.
    finish(a, best_val_loss=0.8, score=0.2)
    finish(b, best_val_loss=0.5, score=0.4)
    do_advance_sweep(exp.pk)
    exp.refresh_from_db()
    assert exp.best_value == pytest.approx(0.2)
    tuned = yaml.safe_load((exp.output_dir / "config-tuned.yaml").read_text())
    a.refresh_from_db()
    assert tuned["lr"] == a.params["lr"]


@pytest.mark.django_db
def test_diverged_trial_fails_and_the_sweep_goes_on(project):
    exp = do_start_sweep(project, None, n_trials=2, parallel=1, seed=0)
    (trial,) = queued(exp)
    finish(trial, best_val_loss=float("inf"))
    do_advance_sweep(exp.pk)
    trial.refresh_from_db()
    assert trial.state == RunState.FAILED and "diverged" in trial.failure_reason
    assert len(queued(exp)) == 1
    assert not (exp.output_dir / "config-tuned.yaml").exists()


@pytest.mark.django_db
def test_trial_lost_with_its_worker_is_retried_once_then_failed(project):
    exp = do_start_sweep(project, None, n_trials=1, parallel=1, seed=0)
    (trial,) = queued(exp)
    params = trial.params
    for attempt in (1, 2):
        Trial.objects.filter(pk=trial.pk).update(attempts=attempt)
        finish(
            trial, state=RunState.FAILED, reason="lost worker: node-1 stopped sending heartbeats"
        )
        do_advance_sweep(exp.pk)
        trial.refresh_from_db()
        if attempt == 1:
            assert trial.state == RunState.QUEUED and trial.params == params
            assert trial.rows_stored == 0 and trial.best_val_loss is None
    assert trial.state == RunState.FAILED
    exp.refresh_from_db()
    assert exp.state == RunState.FAILED
    assert exp.failure_reason == (
        "every trial failed. Trial 0: lost worker: node-1 stopped sending heartbeats"
    )


@pytest.mark.django_db
def test_a_sweep_whose_trials_all_fail_says_why(project):
    exp = do_start_sweep(project, None, n_trials=3, parallel=3, seed=0)
    reasons = [
        "exit code 1\nValueError: arch must be one of small, wide",
        "exit code 1\nValueError: arch must be one of small, wide",
        "config.yaml line 3: invalid YAML",
    ]
    for trial, reason in zip(queued(exp), reasons, strict=True):
        finish(trial, state=RunState.FAILED, reason=reason)
    do_advance_sweep(exp.pk)
    exp.refresh_from_db()
    assert exp.state == RunState.FAILED
    assert exp.failure_reason == (
        "every trial failed (2 of 3 the same way). Trial 0: exit code 1\n"
        "ValueError: arch must be one of small, wide"
    )


@pytest.mark.django_db
def test_stop_resume_and_add_trials(project):
    exp = do_start_sweep(project, None, n_trials=2, parallel=1, seed=0)
    (trial,) = queued(exp)
    assert do_stop_sweep(exp)
    trial.refresh_from_db()
    exp.refresh_from_db()
    assert trial.state == RunState.CANCELLED and exp.state == RunState.CANCELLED
    assert do_fill_sweep(exp) == []  # a stopped sweep queues nothing

    do_resume_sweep(exp)
    exp.refresh_from_db()
    assert exp.state == RunState.RUNNING
    (again,) = queued(exp)
    assert again.number == 1  # the cancelled trial does not count towards n_trials
    finish(again, best_val_loss=0.4)
    do_advance_sweep(exp.pk)
    (last,) = queued(exp)
    finish(last, best_val_loss=0.6)
    do_advance_sweep(exp.pk)
    exp.refresh_from_db()
    assert exp.state == RunState.COMPLETE

    do_resume_sweep(exp, add_trials=1)
    exp.refresh_from_db()
    assert exp.state == RunState.RUNNING and exp.spec["n_trials"] == 3
    assert len(queued(exp)) == 1


@pytest.mark.django_db
def test_deleting_a_sweep_removes_its_study_and_outputs(project):
    exp = do_start_sweep(project, None, n_trials=2, parallel=1, seed=0)
    study_name, output = exp.spec["study"], exp.output_dir
    assert output.is_dir()
    actions.do_delete_experiment(exp)
    assert not Experiment.objects.filter(pk=exp.pk).exists()
    assert not Trial.objects.filter(experiment_id=exp.pk).exists()
    assert not output.exists()
    with pytest.raises(KeyError):
        studies.load_study(study_name)


@pytest.mark.django_db
def test_seeded_sweep_suggests_distinct_reproducible_values(project):
    exp = do_start_sweep(project, None, n_trials=12, parallel=12, seed=7)
    params = [tuple(sorted(t.params.items())) for t in queued(exp)]
    assert len(params) == 12
    assert len(set(params)) == 12, "start-up trials repeated the same values"
    again = do_start_sweep(project, None, n_trials=12, parallel=12, seed=7)
    assert [tuple(sorted(t.params.items())) for t in queued(again)] == params


# Two advances can run at once: each worker takes default-queue tasks, and a restarted worker
# reconciles in its main process. The tests below interleave two by hand.


def _untold(exp):
    """What do_advance_sweep's loop sees: the finished trials not told yet."""
    stale = Experiment.objects.get(pk=exp.pk)
    return stale, [
        t for t in stale.trials.exclude(state__in=ACTIVE_STATES) if not t.metadata.get("told")
    ]


@pytest.mark.django_db
def test_a_concurrent_advance_does_not_tell_a_trial_that_is_being_retried(project):
    exp = do_start_sweep(project, None, n_trials=1, parallel=1, seed=0)
    (trial,) = queued(exp)
    Trial.objects.filter(pk=trial.pk).update(attempts=1)
    finish(trial, state=RunState.FAILED, reason="lost worker: w1 restarted")
    stale_exp, stale = _untold(exp)  # advance B has loaded the failed trial...
    do_advance_sweep(exp.pk)  # ...advance A requeues it for its retry
    for t in stale:  # B goes on with its stale row
        if not sweep._retry_lost_trial(stale_exp, t):
            sweep._tell(stale_exp, t)
    trial.refresh_from_db()
    assert trial.state == RunState.QUEUED and not trial.metadata.get("told")
    study = studies.load_study(exp.spec["study"])
    assert [t.state.name for t in study.trials] == ["RUNNING"]

    finish(trial, best_val_loss=0.3)  # the retry succeeds: the sweep takes its result
    do_advance_sweep(exp.pk)
    exp.refresh_from_db()
    assert exp.state == RunState.COMPLETE and exp.best_value == pytest.approx(0.3)
    assert (exp.output_dir / "config-tuned.yaml").exists()


@pytest.mark.django_db
def test_tuned_config_ends_on_the_best_trial_whatever_the_interleaving(project):
    exp = do_start_sweep(project, None, n_trials=4, parallel=2, seed=1)
    worse, better = queued(exp)
    finish(worse, best_val_loss=0.5)
    finish(better, best_val_loss=0.4)
    worse.refresh_from_db()
    sweep._tell(exp, worse)  # advance A tells the worse trial and looks up the best...
    stale_best = sweep._best_trial(exp)
    do_advance_sweep(exp.pk)  # ...advance B tells the better one and writes its config...
    sweep.write_tuned_config(exp, stale_best)  # ...then A writes its stale best
    do_advance_sweep(exp.pk)  # the next advance puts it right
    better.refresh_from_db()
    tuned = (exp.output_dir / "config-tuned.yaml").read_text()
    assert tuned.startswith(f"# Tuned by p/{exp.name}: trial {better.number}, ")
    assert yaml.safe_load(tuned)["lr"] == better.params["lr"]


@pytest.mark.django_db
def test_finish_looks_up_the_best_itself(project):
    exp = do_start_sweep(project, None, n_trials=1, parallel=1, seed=0)
    (trial,) = queued(exp)
    finish(trial, best_val_loss=0.3)
    trial.refresh_from_db()
    sweep._tell(exp, trial)  # told by another advance after this one looked up the best
    sweep._finish_if_done(exp)
    exp.refresh_from_db()
    assert exp.state == RunState.COMPLETE and exp.failure_reason == ""


@pytest.mark.django_db
def test_stop_between_claim_and_ask_leaves_no_trial_running_in_the_study(project, monkeypatch):
    exp = do_start_sweep(project, None, n_trials=2, parallel=1, seed=0)
    (first,) = queued(exp)
    real_ask = studies.ask

    def ask_after_a_stop(*args, **kwargs):
        actions.do_cancel_experiment(Experiment.objects.get(pk=exp.pk))
        return real_ask(*args, **kwargs)

    finish(first, best_val_loss=0.5)
    monkeypatch.setattr(studies, "ask", ask_after_a_stop)
    do_advance_sweep(exp.pk)  # claims trial 1, which is stopped before its values are stored
    monkeypatch.setattr(studies, "ask", real_ask)
    assert Trial.objects.get(experiment=exp, number=1).state == RunState.CANCELLED
    do_resume_sweep(exp)
    study = studies.load_study(exp.spec["study"])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "RUNNING"]
    assert [t.number for t in queued(exp)] == [2]


@pytest.mark.django_db
def test_a_sweep_without_its_script_starts_nothing(project):
    (project.code_dir / "fast.sh").unlink()
    with pytest.raises(YamlFileError, match=r"^fast\.sh: not found in the project's code/"):
        do_start_sweep(project, None, n_trials=3, fast=True)
    assert not Experiment.objects.exists()
    assert (
        do_start_sweep(project, None, n_trials=1).kind == Experiment.Kind.SWEEP
    )  # full.sh is there


@pytest.fixture
def restartable_redis(settings):
    """A redis-server of this test's own (the session one stays up), restartable in place."""
    from luminide.celery import app
    from luminide.launcher import redis_server_command
    from luminide.settings import celery_broker_url
    from tests.conftest import _reset_celery_pools

    sock = Path(tempfile.mkdtemp(prefix="lumr-", dir="/tmp")) / "redis.sock"
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(subprocess.Popen(redis_server_command(sock), stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(timeout=10)  # redis-server removes its socket on the way out

    start()
    settings.REDIS_URL = f"unix://{sock}"
    # Set aside, not closed: kombu's global producer pools keep using the session's pool.
    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url = celery_broker_url(settings.REDIS_URL)
    app._pool = app.amqp._producer_pool = None
    yield SimpleNamespace(
        start=start, stop=stop, client=lambda: redis.Redis(unix_socket_path=str(sock))
    )
    _reset_celery_pools(app)  # closes this test's connections
    app.conf.broker_url, app._pool, app.amqp._producer_pool = saved
    if procs[-1].poll() is None:
        stop()


@pytest.mark.django_db(transaction=True)  # trials are enqueued when their transaction commits
def test_a_worker_re_drives_queued_work_when_redis_restarted(project, restartable_redis):
    do_start_sweep(project, None, n_trials=2, parallel=1, seed=0)
    actions.do_start_experiment(project, None)  # a Train run waiting for a worker too
    assert restartable_redis.client().llen("gpu") == 2  # their run_trial messages
    run_id = reconcile_after_redis_restart(None)  # a worker's first beat
    assert reconcile_after_redis_restart(run_id) == run_id  # no restart: nothing sent again
    assert restartable_redis.client().llen("gpu") == 2

    restartable_redis.stop()
    assert reconcile_after_redis_restart(run_id) == run_id  # down: the beat goes on
    restartable_redis.start()
    assert restartable_redis.client().llen("gpu") == 0  # the embedded Redis kept nothing
    assert reconcile_after_redis_restart(run_id) != run_id
    assert restartable_redis.client().llen("gpu") == 2  # both are queued again


@pytest.mark.django_db
def test_two_quick_add_trials_both_count(project):
    exp = do_start_sweep(project, None, n_trials=2, parallel=1, seed=0)
    page_a, page_b = Experiment.objects.get(pk=exp.pk), Experiment.objects.get(pk=exp.pk)
    do_resume_sweep(page_a, add_trials=3)
    do_resume_sweep(page_b, add_trials=3)  # loaded before the first add was stored
    exp.refresh_from_db()
    assert exp.spec["n_trials"] == 8
