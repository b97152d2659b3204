"""End to end with a real Redis and real Celery worker processes (marked slow).

The worker sees the rows because the test DB is a file and these tests commit
(``transaction=True``); see tests/conftest.py.
"""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from luminide.launcher import process_alive
from luminide.models import ComputeNode
from sweeps.actions import do_cancel_experiment, do_start_experiment
from sweeps.models import ACTIVE_STATES, Experiment, RunState, Trial
from sweeps.routing import websocket_urlpatterns
from sweeps.tasks import run_trial
from tests import factories
from tests.factories import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

TINY_FAST_SH = "python ../code/train.py --epochs 2 --subset 300\n"
SLEEPER = (
    "import time\n"
    "open('history.csv', 'w').write('index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n')\n"
    "open('started', 'w').write('1')\n"
    "time.sleep(600)\n"
)


def _finished(experiment: Experiment) -> Experiment | None:
    experiment.refresh_from_db()
    return experiment if experiment.state not in ACTIVE_STATES else None


async def test_real_training_reaches_db_and_websocket(celery_worker, owner):
    project = await sync_to_async(factories.make_project)(owner, files={"fast.sh": TINY_FAST_SH})
    experiment = await sync_to_async(do_start_experiment)(project, owner, fast=True)
    comm = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/experiments/{experiment.pk}/"
    )
    comm.scope["user"] = owner
    assert (await comm.connect(timeout=30))[0]
    seen: dict[str, list[dict]] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        event = await comm.receive_json_from(timeout=180)
        seen.setdefault(event["type"], []).append(event)
        if event["type"] == "experiment.update" and event["state"] not in ("queued", "running"):
            break
    await comm.disconnect()
    assert seen["experiment.update"][-1]["state"] == "complete", seen.get("log.lines")
    assert sum(len(e["series"]["train"]["x"]) for e in seen["history.rows"]) > 10
    assert seen["log.lines"]
    cursors = [e["cursor"] for e in seen["history.rows"]]
    assert cursors == sorted(cursors)

    trial = await sync_to_async(Trial.objects.select_related("node").get)(experiment=experiment)
    assert trial.rows_stored == cursors[-1]
    assert trial.epochs_done == 2 and trial.best_val_loss is not None
    assert trial.node.hostname == celery_worker.name
    out = experiment.output_dir
    assert (out / "trial0" / "model.pth").is_file() and (out / "trial0" / "history.csv").is_file()
    assert (out / "code" / "train.py").is_file()


def test_cancel_through_the_worker(celery_worker, owner):
    project = factories.make_project(owner, template="", files={
        "full.sh": "python ../code/train.py\n", "config.yaml": "a: 1\n", "train.py": SLEEPER,
    })  # fmt: skip
    experiment = do_start_experiment(project, owner)
    wait_for(
        lambda: (experiment.output_dir / "trial0" / "started").exists(), 60, "the script to start"
    )
    trial = experiment.trials.get()
    pid = wait_for(lambda: Trial.objects.get(pk=trial.pk).pid, 10, "the pid")
    do_cancel_experiment(experiment)
    wait_for(lambda: not process_alive(pid), 15, "the process group to stop")
    trial.refresh_from_db()
    assert trial.state == RunState.CANCELLED
    wait_for(
        lambda: ComputeNode.objects.get(hostname=celery_worker.name).state == "idle", 10, "idle"
    )


def test_crash_through_the_worker(celery_worker, owner):
    project = factories.make_project(owner, template="", files={
        "full.sh": "echo starting; exit 3\n", "config.yaml": "a: 1\n",
    })  # fmt: skip
    experiment = (
        wait_for(lambda: _finished(e), 60, "the run")
        if (e := do_start_experiment(project, owner))
        else None
    )
    assert experiment.state == RunState.FAILED
    assert experiment.failure_reason.startswith("exit code 3")


def test_sigkilled_worker_is_detected_by_heartbeat(celery_worker, start_worker, owner):
    """The dying worker's trial is failed by another worker's heartbeat loop (timeout 5 s)."""
    doomed = start_worker(queues="doomed")
    project = factories.make_project(owner, template="", files={
        "full.sh": "python ../code/train.py\n", "config.yaml": "a: 1\n", "train.py": SLEEPER,
    })  # fmt: skip
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()
    run_trial.apply_async((trial.pk,), queue="doomed")
    wait_for(
        lambda: (experiment.output_dir / "trial0" / "started").exists(), 60, "the script to start"
    )
    pid = wait_for(lambda: Trial.objects.get(pk=trial.pk).pid, 10, "the pid")
    assert Trial.objects.get(pk=trial.pk).node.hostname == doomed.name
    killed_at = time.monotonic()
    doomed.kill()
    wait_for(lambda: _finished(experiment), 60, "the lost worker verdict")
    assert time.monotonic() - killed_at < 60
    trial.refresh_from_db()
    assert trial.state == RunState.FAILED
    assert trial.failure_reason.startswith("lost worker"), trial.failure_reason
    assert ComputeNode.objects.get(hostname=doomed.name).state == ComputeNode.State.OFFLINE
    wait_for(lambda: not process_alive(pid), 15, "the orphaned training process to be stopped")
