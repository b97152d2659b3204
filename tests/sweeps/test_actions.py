"""Actions: experiment start/cancel, claim/finish, history ingestion, nodes."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from luminide.models import ComputeNode
from sweeps import actions
from sweeps.actions import (
    do_cancel_experiment,
    do_claim_trial,
    do_finish_trial,
    do_ingest_history,
    do_mark_lost_nodes,
    do_register_node,
    do_start_experiment,
)
from sweeps.models import Experiment, HistoryChunk, RunState, Trial, TrialEpoch
from tests import factories
from tests.factories import LAYOUT3_HEADER, layout3_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Events published (after commit)."""
    out: list[dict] = []
    monkeypatch.setattr("sweeps.actions.send_event_now", lambda exp_id, *evs: out.extend(evs))
    return out


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(
        "sweeps.tasks.run_trial.apply_async", lambda args, **kw: calls.append((args, kw))
    )
    return calls


def test_start_experiment_numbers_and_enqueues_after_commit(
    project, owner, enqueued, sent, django_capture_on_commit_callbacks
):
    (project.output_dir / "exp4").mkdir(parents=True)  # a folder left by a deleted experiment
    with django_capture_on_commit_callbacks(execute=True):
        experiment = do_start_experiment(project, owner, fast=True, description="hello")
        assert enqueued == []
    assert experiment.number == 5
    assert experiment.kind == Experiment.Kind.FAST_TRAIN
    assert experiment.config["lr"] == 0.05  # the config.yaml it starts with
    trial = experiment.trials.get()
    assert (trial.number, trial.state) == (0, RunState.QUEUED)
    assert enqueued == [((trial.pk,), {"queue": "gpu", "task_id": trial.task_id})]
    assert {e["type"] for e in sent} == {"experiment.update", "trial.update"}
    assert do_start_experiment(project, owner).number == 6


def test_start_without_the_script_creates_nothing(project, owner, enqueued):
    (project.code_dir / "fast.sh").unlink(missing_ok=True)
    with pytest.raises(
        ValueError, match=r"fast\.sh: not found in the project's code/.*Fast Training"
    ):
        do_start_experiment(project, owner, fast=True)
    (project.code_dir / "fast.sh").write_text("python ../code/train.py\n")
    (project.code_dir / "config.yaml").unlink()
    with pytest.raises(ValueError, match=r"config\.yaml: not found in the project's code/"):
        do_start_experiment(project, owner, fast=True)
    assert not project.experiments.exists() and enqueued == []
    assert not any(project.output_dir.glob("exp*"))


def test_start_with_code_that_cannot_be_copied_says_which_file(project, owner, enqueued):
    (project.code_dir / "full.sh").write_text("python ../code/train.py\n")
    server = socket.socket(socket.AF_UNIX)  # a file copytree cannot copy
    server.bind(str(project.code_dir / "live.sock"))
    try:
        with pytest.raises(ValueError, match=r"code/live\.sock: cannot be copied for the run"):
            do_start_experiment(project, owner)
    finally:
        server.close()
    assert not project.experiments.exists() and enqueued == []
    assert list(project.output_dir.iterdir()) == []  # no half copy left behind


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_get_distinct_numbers(project, owner, enqueued):
    numbers, errors = [], []

    def start():
        try:
            numbers.append(do_start_experiment(project, owner).number)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_claim_is_idempotent_and_marks_node_busy(project, sent):
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()
    claimed = do_claim_trial(trial.pk, hostname="w1@host")
    assert claimed.state == RunState.RUNNING and claimed.attempts == 1
    assert claimed.node.hostname == "w1@host"
    assert ComputeNode.objects.get(hostname="w1@host").state == ComputeNode.State.BUSY
    assert do_claim_trial(trial.pk, hostname="w1@host") is None
    experiment.refresh_from_db()
    assert experiment.state == RunState.RUNNING and experiment.started_at


def test_finish_sets_single_run_experiment_and_frees_node(project, sent):
    experiment = factories.make_experiment(project)
    trial = do_claim_trial(experiment.trials.get().pk, hostname="w1@host")
    assert do_finish_trial(trial, RunState.FAILED, reason="exit code 1\nboom")
    experiment.refresh_from_db()
    assert (experiment.state, experiment.failure_reason) == (RunState.FAILED, "exit code 1\nboom")
    assert ComputeNode.objects.get(hostname="w1@host").state == ComputeNode.State.IDLE
    assert not do_finish_trial(trial, RunState.COMPLETE)  # already finished: no change
    trial.refresh_from_db()
    assert trial.state == RunState.FAILED
    with pytest.raises(ValueError):
        do_finish_trial(trial, RunState.RUNNING)


def test_cancel_experiment(project, sent):
    experiment = factories.make_experiment(project)
    trial = do_claim_trial(experiment.trials.get().pk, hostname="w1@host")
    assert do_cancel_experiment(experiment)
    trial.refresh_from_db()
    experiment.refresh_from_db()
    assert trial.state == experiment.state == RunState.CANCELLED
    assert not do_cancel_experiment(experiment)
    # The runner finishing afterwards does not overwrite the cancellation.
    assert not do_finish_trial(trial, RunState.FAILED, reason="killed by signal SIGTERM")


def test_ingest_stores_rows_epochs_and_best(project, sent):
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()
    result = do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(3, 10))
    assert (result.rows, result.cursor, result.completed_epochs) == (33, 33, [0, 1, 2])
    trial.refresh_from_db()
    assert trial.rows_stored == 33 and trial.epochs_done == 3
    assert trial.best_val_loss == pytest.approx(2.2 / 4)
    epochs = list(trial.epochs.values_list("epoch", "val_loss"))
    assert [e for e, _ in epochs] == [0, 1, 2]
    experiment.refresh_from_db()
    assert experiment.best_value == pytest.approx(2.2 / 4)
    assert HistoryChunk.objects.filter(trial=trial).count() == 1


def test_ingest_skips_malformed_rows_and_keeps_stored_ones(project, sent):
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + "0,0,32,2.0,,\n")
    bad = LAYOUT3_HEADER + "1,0,64,oops,,\n2,0,96,1.9,,\n3,0\n"
    result = do_ingest_history(trial, bad, line_offset=1)
    assert result.rows == 1
    assert len(result.warnings) == 2 and "line 3" in result.warnings[0]
    trial.refresh_from_db()
    assert trial.rows_stored == 2


def test_ingest_bad_header_raises_and_stores_nothing(project):
    trial = factories.make_experiment(project).trials.get()
    with pytest.raises(ValueError, match="missing column"):
        do_ingest_history(trial, "a,b,c\n1,2,3\n")
    assert trial.history_chunks.count() == 0


def test_layout1_epochs_close_on_next_epoch_and_at_finish(project, sent):
    experiment = factories.make_experiment(project)
    trial = do_claim_trial(experiment.trials.get().pk)
    header = ",epoch,iter,train_loss,val_loss\n"
    do_ingest_history(trial, header + "0,0,0,1.0,\n1,0,1,0.8,0.9\n2,1,0,0.7,\n")
    assert list(trial.epochs.values_list("epoch", flat=True)) == [0]
    do_ingest_history(trial, header + "3,1,1,0.6,0.5\n")
    do_finish_trial(trial, RunState.COMPLETE)
    assert list(trial.epochs.values_list("epoch", "val_loss")) == [(0, 0.9), (1, 0.5)]
    trial.refresh_from_db()
    assert trial.best_val_loss == 0.5


def test_ingest_scores_completed_epochs_with_the_ranker(project, sent, monkeypatch):
    class FakeRanker:
        def score_many(self, frames):
            return [float(df["epoch"].max()) + 0.5 for df in frames]

    monkeypatch.setattr(actions, "_ranker_state", {"ranker": FakeRanker(), "checked": 0.0})
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(1, 5))
    do_ingest_history(
        trial, LAYOUT3_HEADER + layout3_rows(1, 5, start_index=6).replace(",0,", ",1,")
    )
    trial.refresh_from_db()
    assert list(trial.epochs.values_list("epoch", "score")) == [(0, 0.5), (1, 1.5)]
    assert trial.score == 1.5


def test_one_batch_and_streamed_ingest_store_the_same_scores(project, tmp_path):
    """A bulk ingest scores the rows it holds; a streamed one reads the prefix back."""
    from ranking import EarlyRanker, read_history
    from sweeps.management.commands.bench import generate_history

    path = tmp_path / "history.csv"
    generate_history(path, rows=3000, epochs=6)
    text = path.read_text()
    header, *lines = text.splitlines(keepends=True)
    whole = factories.make_experiment(project).trials.get()
    do_ingest_history(whole, text)
    streamed = factories.make_experiment(project).trials.get()
    for start in range(0, len(lines), 700):
        do_ingest_history(streamed, header + "".join(lines[start : start + 700]))
    scores = [list(t.epochs.values_list("epoch", "score")) for t in (whole, streamed)]
    assert scores[0] == scores[1]
    history = read_history(path)
    ranker = EarlyRanker.load()
    # Every epoch has its score, even when one read completed them all.
    expected = [(e, ranker.score(history[history.epoch <= e])) for e in range(6)]
    assert scores[0] == [(e, pytest.approx(v, rel=1e-12)) for e, v in expected]


def test_live_ingest_and_the_score_command_skip_the_same_lines_and_agree(
    project, sent, tmp_path, capsys
):
    """One rule for malformed lines: the platform (tailer + ingest, as the runner does) and
    ``python -m ranking score`` skip the same lines, name the same file lines, and score
    the run the same as the file with those lines removed."""
    import json

    from ranking._cli import main
    from sweeps.tailer import HistoryTailer

    lines = (LAYOUT3_HEADER + layout3_rows(4, 10)).splitlines(keepends=True)
    lines.insert(6, "5,0,160,0.9,0.95,,extra\n")  # file line 7: an extra field
    lines.insert(30, "28,2,64,abc,,\n")  # file line 31: not a number
    path = tmp_path / "history.csv"
    clean = tmp_path / "clean.csv"
    clean.write_text("".join(line for i, line in enumerate(lines) if i not in (6, 30)))

    trial = factories.make_experiment(project).trials.get()
    tailer = HistoryTailer(path)
    warnings = []
    for part, final in ((lines[:20], False), (lines[20:], True)):  # read while it grows
        with open(path, "a") as fh:
            fh.write("".join(part))
        chunk = tailer.read(final=final)
        warnings += do_ingest_history(trial, chunk.text, line_offset=chunk.line_offset).warnings
    trial.refresh_from_db()
    assert trial.rows_stored == len(lines) - 3 and trial.epochs_done == 4

    assert main(["score", str(path), str(clean), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out[0]["warnings"]
        == warnings
        == [
            "history.csv line 7: expected 6 fields, found 7",
            "history.csv line 31, column train_loss: 'abc' is not a number",
        ]
    )
    assert out[0]["score"] == out[1]["score"] == pytest.approx(trial.score, rel=1e-12)


def test_a_long_bulk_ingest_scores_evenly_spread_epochs(project, sent, monkeypatch):
    """Past MAX_SCORED_ROWS, fewer epochs are scored: the newest and an even spread."""
    monkeypatch.setattr(actions, "MAX_SCORED_ROWS", 6 * 60)  # 20 epochs x 3 rows: room for 6
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(20, 2))
    trial.refresh_from_db()
    scored = list(trial.epochs.exclude(score=None).values_list("epoch", flat=True))
    assert scored == [0, 4, 8, 11, 15, 19]
    assert trial.score == trial.epochs.get(epoch=19).score


def test_ingest_without_ranker_leaves_scores_empty(project, monkeypatch):
    import time

    monkeypatch.setattr(actions, "_ranker_state", {"ranker": None, "checked": time.monotonic()})
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(1, 5))
    assert TrialEpoch.objects.get(trial=trial).score is None


def test_missing_ranker_model_is_looked_for_again(monkeypatch):
    import ranking

    loads = []

    class Loaded:
        pass

    def load():
        loads.append(1)
        if len(loads) == 1:
            raise FileNotFoundError("ranking/models/early_ranker.txt")
        return Loaded()

    monkeypatch.setattr(ranking.EarlyRanker, "load", staticmethod(load))
    monkeypatch.setattr(actions, "_ranker_state", {"ranker": None, "checked": float("-inf")})
    assert actions._get_ranker() is None
    assert actions._get_ranker() is None and len(loads) == 1  # not retried at once
    actions._ranker_state["checked"] -= actions.RANKER_RETRY_SECONDS + 1
    assert isinstance(actions._get_ranker(), Loaded)
    assert isinstance(actions._get_ranker(), Loaded) and len(loads) == 2


def test_mark_lost_nodes_fails_their_running_trials(project, sent):
    old = timezone.now() - timedelta(minutes=10)
    node = ComputeNode.objects.create(hostname="dead@host", device="CPU", last_heartbeat=old)
    ComputeNode.objects.create(hostname="alive@host", device="CPU")
    experiment = factories.make_experiment(project)
    trial = do_claim_trial(experiment.trials.get().pk, hostname="dead@host")
    ComputeNode.objects.filter(pk=node.pk).update(last_heartbeat=old)
    api_run = factories.make_experiment(project, kind=Experiment.Kind.API, state=RunState.RUNNING)
    assert do_mark_lost_nodes() == ["dead@host"]
    trial.refresh_from_db()
    assert trial.state == RunState.FAILED and trial.failure_reason.startswith("lost worker")
    experiment.refresh_from_db()
    assert experiment.state == RunState.FAILED
    assert api_run.trials.get().state == RunState.RUNNING  # no node: not a worker's trial
    assert ComputeNode.objects.get(hostname="alive@host").state == ComputeNode.State.IDLE
    assert do_mark_lost_nodes() == []


def test_a_trial_whose_runner_process_died_fails_at_the_next_heartbeat(project, sent):
    """A pool child killed (SIGKILL, the OOM killer) while the worker lives on: the trial
    must not stay RUNNING. This test process plays the worker's main process; its child
    processes play the pool children."""
    live = subprocess.Popen(["sleep", "30"])
    dead = subprocess.Popen(["true"])
    dead.wait()  # gone and reaped
    me, machine = os.getpid(), actions.machine_id()
    runners = {
        "live": {"machine": machine, "worker": me, "pid": live.pid},
        "dead": {"machine": machine, "worker": me, "pid": dead.pid},
        # Alive, but not one of this worker's pool children: its runner is gone.
        "not-mine": {"machine": machine, "worker": me, "pid": os.getppid()},
        # Another worker's trials, though they share the node name "w@h": not judged here.
        "other-machine": {"machine": "another-boot:1", "worker": me, "pid": dead.pid},
        "other-worker": {"machine": machine, "worker": me + 1, "pid": dead.pid},
    }
    trials = {}
    for name, runner in runners.items():
        trial = do_claim_trial(factories.make_experiment(project).trials.get().pk, hostname="w@h")
        Trial.objects.filter(pk=trial.pk).update(metadata={"runner": runner})
        trials[name] = trial
    try:
        failed = actions.do_fail_trials_of_dead_runners("w@h")
        # The claim records its runner: here this very process (a solo pool), whose parent
        # is not this worker: never judged.
        claimed = do_claim_trial(factories.make_experiment(project).trials.get().pk, hostname="w@h")
        assert claimed.metadata["runner"] == {"machine": machine, "worker": os.getppid(), "pid": me}
        assert actions.do_fail_trials_of_dead_runners("w@h") == []
    finally:
        live.kill()
        live.wait()
    assert sorted(t.pk for t in failed) == sorted([trials["dead"].pk, trials["not-mine"].pk])
    states = {name: Trial.objects.get(pk=t.pk) for name, t in trials.items()}
    assert states["dead"].failure_reason == (
        f"lost worker: the process running it on w@h died (pid {dead.pid})"
    )  # "lost worker": a sweep retries it once
    assert {n for n, t in states.items() if t.state == RunState.RUNNING} == {
        "live",
        "other-machine",
        "other-worker",
    }


def test_failed_publishes_are_logged_once_per_period(monkeypatch, caplog):
    """While Redis is down every history row's event fails: one warning per 30 s, with how
    many were not logged, instead of one per row."""

    class DownLayer:
        async def group_send(self, group, message):
            raise ConnectionError("Redis is down")

    monkeypatch.setattr("channels.layers.get_channel_layer", lambda: DownLayer())
    monkeypatch.setitem(actions._publish_failures, "logged_at", -1e9)
    monkeypatch.setitem(actions._publish_failures, "unlogged", 0)
    clock = [1000.0]
    monkeypatch.setattr(actions, "_publish_clock", lambda: clock[0])
    for _ in range(3):
        actions.send_event_now(7, {"type": "history.rows"})
    clock[0] += actions.PUBLISH_WARNING_SECONDS
    actions.send_event_now(7, {"type": "history.rows"})
    warnings = [r.getMessage() for r in caplog.records if "could not publish" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].endswith("ConnectionError('Redis is down')")
    assert warnings[1].endswith("(and 2 more since the last warning)")


def test_register_node_fails_trials_of_its_previous_process(project, sent):
    trial = do_claim_trial(factories.make_experiment(project).trials.get().pk, hostname="w@h")
    Trial.objects.filter(pk=trial.pk).update(started_at=timezone.now() - timedelta(seconds=5))
    node = do_register_node("w@h", device="NVIDIA H100", device_memory_mb=81_000, gpu_count=1)
    assert (node.device, node.state) == ("NVIDIA H100", ComputeNode.State.IDLE)
    trial.refresh_from_db()
    assert trial.state == RunState.FAILED and "restarted" in trial.failure_reason
    assert do_register_node("w@h").device == "NVIDIA H100"  # device kept when not given
