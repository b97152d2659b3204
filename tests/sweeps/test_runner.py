"""The trial runner, in this process (no worker): run folder, script, log, history, outcome."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from luminide.launcher import process_alive
from sweeps.actions import do_cancel_experiment, do_start_experiment
from sweeps.models import Experiment, RunState
from sweeps.runner import run_trial
from tests import factories

pytestmark = pytest.mark.django_db

FULL_SH = "python ../code/train.py --epochs 2\n"
CONFIG = "lr: 0.1\n"
TRAIN_OK = """
import os, sys
print("cwd", os.getcwd())
print("code", os.path.realpath("../code"))
print("trial", os.environ["TRIAL"])
assert os.path.isfile("../code/config.yaml"), "no ../code/config.yaml"
assert os.path.isdir("../input"), "no ../input"
print("to stderr", file=sys.stderr)
with open("history.csv", "w") as fh:
    fh.write("index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n")
    i = 0
    for e in range(2):
        for s in range(1, 6):
            fh.write(f"{i},{e},{s * 10},{1.0 / (e + s)},,\\n"); i += 1
            fh.flush()
        fh.write(f"{i},{e},50,,,{0.5 / (e + 1)}\\n"); i += 1
    fh.write(f"{i},2,10,0.1,,")  # unterminated last line: taken at exit
"""


def _project(owner, **files):
    base = {"full.sh": FULL_SH, "fast.sh": FULL_SH, "config.yaml": CONFIG, "train.py": TRAIN_OK}
    base.update(files)
    return factories.make_project(
        owner, template="", files={k: v for k, v in base.items() if v is not None}
    )


def _run(project, **kw):
    experiment = factories.make_experiment(project, **kw)
    trial = experiment.trials.order_by("number").last()
    state = run_trial(trial.pk, hostname="test@runner")
    trial.refresh_from_db()
    experiment.refresh_from_db()
    return experiment, trial, state


def test_successful_run(owner):
    project = _project(owner)
    (project.input_dir / "data.txt").write_text("x")
    experiment, trial, state = _run(project)
    assert state == trial.state == experiment.state == RunState.COMPLETE
    assert trial.rows_stored == 13 and trial.epochs_done == 2
    assert trial.best_val_loss == 0.25
    out = experiment.output_dir / "trial0"
    assert trial.run_dir == out
    log = (out / "log.txt").read_text()
    assert f"cwd {out}" in log and "trial 0" in log and "to stderr" in log
    assert f"code {experiment.output_dir / 'code'}" in log  # ../code is the snapshot
    assert "trial complete" in log
    assert (experiment.output_dir / "code" / "train.py").is_file()  # the snapshot
    assert (out / "config.yaml").read_text() == CONFIG  # the config it ran with
    assert trial.pid is None and trial.node.hostname == "test@runner"
    assert run_trial(trial.pk) is None  # a second delivery does nothing


def test_a_run_runs_the_code_as_it_was_when_train_was_clicked(owner, monkeypatch):
    """Edits made while the run waits for a worker are not in it, though full.sh runs
    ``python ../code/train.py``: ``../code`` is the snapshot taken at the click."""
    monkeypatch.setattr("sweeps.tasks.run_trial.apply_async", lambda *a, **kw: None)
    project = _project(owner, **{"train.py": TRAIN_OK + "print('version', 1)\n"})
    (project.code_dir / "config.yaml.bak-20261203-101010").write_text("lr: 9\n")
    experiment = do_start_experiment(project, owner)
    snapshot = experiment.output_dir / "code"
    assert (snapshot / "train.py").is_file()
    assert not list(snapshot.glob("config.yaml.bak-*"))  # Use tuned config's backups
    (project.code_dir / "train.py").write_text(TRAIN_OK + "print('version', 2)\n")
    (project.code_dir / "config.yaml").write_text("lr: 0.2\n")
    trial = experiment.trials.get()
    assert run_trial(trial.pk, hostname="test@runner") == RunState.COMPLETE
    log = (trial.run_dir / "log.txt").read_text()
    assert "version 1" in log and "version 2" not in log
    assert (trial.run_dir / "config.yaml").read_text() == CONFIG


def test_sweep_trial_runs_in_its_folder_with_the_snapshot(owner):
    project = _project(owner)
    experiment, trial, state = _run(project, kind=Experiment.Kind.SWEEP, trials=2)
    assert trial.number == 1
    log = (experiment.output_dir / "trial1" / "log.txt").read_text()
    assert f"code {experiment.output_dir / 'code'}" in log
    assert "trial 1" in log
    assert state == RunState.COMPLETE


def test_crash_fails_with_the_error_first_then_the_stderr_tail(owner):
    project = _project(
        owner,
        **{
            "train.py": "import sys, warnings\nprint('hello')\n"
            "warnings.warn('a library warning\\nover two lines')\n"
            "raise RuntimeError('boom at step 3')\n"
        },
    )
    experiment, trial, state = _run(project)
    assert state == RunState.FAILED
    first, rest = trial.failure_reason.split("\n", 1)
    assert first == "exit code 1: RuntimeError: boom at step 3"  # above the warning
    assert "a library warning" in rest and "Traceback" in rest
    assert experiment.failure_reason == trial.failure_reason


TRAIN_DIVERGES = """
with open("history.csv", "w") as fh:
    fh.write(",epoch,iter,train_loss,val_loss,epoch_val_loss\\n")
    i = 0
    for e, (train, end) in enumerate({losses}):
        fh.write(f"{{i}},{{e}},0,{{train}},,\\n"); i += 1
        if end is not None:
            fh.write(f"{{i}},{{e}},-1,,,{{end}}\\n"); i += 1
print("training went on")
"""


@pytest.mark.parametrize(
    ("losses", "reason", "best_before"),
    [
        # The val loss goes NaN at the second epoch; the script carries on to the end.
        (
            [(1.0, 0.9), ("nan", "nan"), ("nan", "nan")],
            "the val loss of its last epoch (2)",
            0.9,
        ),
        # The script stops on a NaN train loss in its last epoch (the templates do).
        (
            [(1.0, 0.9), (0.8, 0.7), ("nan", None)],
            "the train_loss of the last row of history.csv",
            0.7,
        ),
    ],
)
def test_a_run_that_ends_diverged_fails_though_it_exits_0(owner, losses, reason, best_before):
    """Its best val loss is from before it diverged: a sweep must not rank it by that."""
    project = _project(owner, **{"train.py": TRAIN_DIVERGES.format(losses=losses)})
    experiment, trial, state = _run(project)
    assert state == experiment.state == RunState.FAILED
    assert trial.failure_reason == f"diverged: {reason} is not finite"
    assert trial.best_val_loss == best_before  # kept, for the record
    assert "training went on" in (trial.run_dir / "log.txt").read_text()


@pytest.mark.parametrize(
    "losses",
    [
        [(1.0, ""), (0.8, 0.7), (0.6, 0.5)],  # blank cells: validation every few epochs
        [(1.0, 0.9), ("nan", "nan"), (0.6, 0.5)],  # one bad epoch, recovered
    ],
)
def test_a_missing_value_or_a_recovered_step_is_not_divergence(owner, losses):
    project = _project(owner, **{"train.py": TRAIN_DIVERGES.format(losses=losses)})
    _experiment, trial, state = _run(project)
    assert state == RunState.COMPLETE and trial.best_val_loss == 0.5


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"full.sh": None}, "code/full.sh not found"),
        ({"config.yaml": None}, "code/config.yaml not found"),
        ({"config.yaml": "lr: [0.1\nbatch: 3\n"}, "config.yaml line"),
        ({"train.py": None}, "code/train.py not found"),
    ],
)
def test_missing_or_invalid_files_fail_clearly(owner, files, message):
    _experiment, trial, state = _run(_project(owner, **files))
    assert state == RunState.FAILED
    assert message in trial.failure_reason
    assert message in (trial.run_dir / "log.txt").read_text()


def test_a_config_saved_in_latin_1_fails_clearly(owner):
    project = _project(owner)
    (project.code_dir / "config.yaml").write_bytes("lr: 0.1  # café\n".encode("latin-1"))
    _experiment, trial, state = _run(project)
    assert state == RunState.FAILED
    assert trial.failure_reason == "config.yaml: not UTF-8 text (save it as UTF-8)"


def test_script_that_never_writes_history_fails(owner):
    _experiment, trial, state = _run(_project(owner, **{"train.py": "print('no history')\n"}))
    assert state == RunState.FAILED
    assert "without writing history.csv" in trial.failure_reason


def _writes(text: str) -> str:
    return f"open('history.csv', 'w', encoding='utf-8').write({text!r})\n"


def test_a_history_with_no_usable_row_fails_with_the_reason(owner):
    _experiment, trial, state = _run(
        _project(owner, **{"train.py": _writes("step,train_loss,val_loss\n1,0.9,\n")})
    )
    assert state == RunState.FAILED  # exit code 0, but nothing to show or rank
    assert trial.failure_reason.startswith("history.csv: no row could be stored: ")
    assert "epoch" in trial.failure_reason  # the header error says what is missing


def test_a_history_starting_with_a_byte_order_mark_is_read(owner):
    text = "\ufeffindex,epoch,sample_count,train_loss,val_loss,epoch_val_loss\n0,0,10,1.0,,0.8\n"
    _experiment, trial, state = _run(_project(owner, **{"train.py": _writes(text)}))
    assert state == RunState.COMPLETE and trial.rows_stored == 1


def test_malformed_rows_are_skipped_with_a_warning_in_the_log(owner):
    train = (
        "with open('history.csv', 'w') as fh:\n"
        "    fh.write('index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n')\n"
        "    fh.write('0,0,10,1.0,,\\n1,0,20,abc,,\\n2,0,30,0.9\\n3,0,30,,,0.8\\n')\n"
    )
    _experiment, trial, state = _run(_project(owner, **{"train.py": train}))
    assert state == RunState.COMPLETE
    assert trial.rows_stored == 2
    log = (trial.run_dir / "log.txt").read_text()
    assert "warning: skipped a malformed row: history.csv line 3, column train_loss" in log
    assert "line 4: expected 6 fields" in log


PANDAS_REWRITES = """
import time
import pandas as pd
rows = []
for e in range(3):
    for it in range(100):
        rows.append({"epoch": e, "iter": it, "train_loss": 1.0 / (1 + e), "val_loss": None})
        if it % 25 == 24:
            pd.DataFrame(rows).to_csv("history.csv")  # the whole file, every 25 steps
            time.sleep(0.3)
    rows.append({"epoch": e, "iter": -1, "epoch_val_loss": 0.8 / (1 + e)})  # a new column
    pd.DataFrame(rows).to_csv("history.csv")
    time.sleep(0.3)
"""


def test_history_rewritten_by_pandas_every_few_steps_is_stored_once(owner):
    _experiment, trial, state = _run(_project(owner, **{"train.py": PANDAS_REWRITES}))
    assert state == RunState.COMPLETE
    assert trial.rows_stored == 303  # not the rows of every rewrite again
    assert trial.epochs_done == 3 and trial.best_val_loss == pytest.approx(0.8 / 3)
    log = (trial.run_dir / "log.txt").read_text()
    assert "skipped a malformed row" not in log


def test_processes_left_running_by_the_script_are_stopped_when_it_exits(owner):
    train = TRAIN_OK + (
        "import subprocess\n"
        "open('leftover.pid', 'w').write(str(subprocess.Popen(['sleep', '1000']).pid))\n"
    )
    _experiment, trial, state = _run(_project(owner, **{"train.py": train}))
    assert state == RunState.COMPLETE
    pid = int((trial.run_dir / "leftover.pid").read_text())
    assert not process_alive(pid)


def test_fast_training_runs_fast_sh(owner):
    project = _project(owner, **{"fast.sh": "echo FAST; python ../code/train.py\n"})
    _experiment, trial, state = _run(project, kind=Experiment.Kind.FAST_TRAIN)
    assert state == RunState.COMPLETE
    assert "FAST" in (trial.run_dir / "log.txt").read_text()


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_process_group(owner):
    train = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "open('child.pid', 'w').write(str(child.pid))\n"
        "open('history.csv', 'w').write('epoch,train_loss,val_loss\\n')\n"
        "time.sleep(300)\n"
    )
    project = _project(owner, **{"train.py": train})
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()

    def cancel_soon():
        try:
            deadline = time.monotonic() + 30
            while not (trial.run_dir / "child.pid").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            do_cancel_experiment(experiment)
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    started = time.monotonic()
    state = run_trial(trial.pk)
    canceller.join()
    assert state == RunState.CANCELLED
    assert time.monotonic() - started < 30
    child = int((trial.run_dir / "child.pid").read_text())
    time.sleep(0.2)
    assert not process_alive(child)  # the script's own child is gone too
    assert "stopping the training process (cancelled)" in (trial.run_dir / "log.txt").read_text()


@pytest.mark.django_db(transaction=True)
def test_deleting_the_experiment_stops_the_run_quietly(owner):
    train = (
        "import time\n"
        "open('history.csv', 'w').write('epoch,train_loss,val_loss\\n')\n"
        "open('started', 'w').write('1')\n"
        "time.sleep(300)\n"
    )
    project = _project(owner, **{"train.py": train})
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()

    def delete_soon():
        try:
            deadline = time.monotonic() + 30
            while not (trial.run_dir / "started").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            Experiment.objects.filter(pk=experiment.pk).delete()
        finally:
            connection.close()

    deleter = threading.Thread(target=delete_soon)
    deleter.start()
    started = time.monotonic()
    assert run_trial(trial.pk) is None
    deleter.join()
    assert time.monotonic() - started < 30
