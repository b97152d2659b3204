"""``manage.py ranker_check`` on a project: trains sampled configs, scores their first epochs.

The training script is a tiny synthetic one (no torch) whose curves all have one shape at
different levels, so the true order is known at every epoch; the check on the real
templates is in docs/ranking.md.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from sweeps.management.commands.ranker_check import Command, fast_epochs
from sweeps.models import Experiment, RunState
from tests import factories

TRAIN = """\
import sys, yaml
cfg = yaml.safe_load(open("config.yaml"))
epochs = int(sys.argv[sys.argv.index("--stop-after") + 1]) if "--stop-after" in sys.argv else 10
with open("history.csv", "w") as fh:
    fh.write("index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n")
    for epoch in range(epochs):
        if cfg["lr"] > 0.85 and epoch == 4:
            fh.write(f"{2 * epoch},{epoch},50,inf,,\\n")
            break
        level = (1 + 3 * abs(cfg["lr"] - 0.3)) * (0.5 + 1 / (epoch + 1))
        fh.write(f"{2 * epoch},{epoch},50,{level * 1.1},{level},\\n")
        fh.write(f"{2 * epoch + 1},{epoch},100,,,{level}\\n")
"""
FILES = {
    "train.py": TRAIN,
    "full.sh": "python ../code/train.py\n",
    "fast.sh": "python ../code/train.py --stop-after 3\n",
    "sweep.yaml": "parameters:\n  lr: {distribution: uniform, min: 0.0, max: 1.0}\n",
    "config.yaml": "lr: 0.5\n",
}


def _check(tmp_path, slug: str, configs: int = 8) -> str:
    out = io.StringIO()
    call_command(
        "ranker_check", project=slug, configs=configs, work=str(tmp_path / "work"), stdout=out
    )
    return out.getvalue()


def _sweep(project, kind: str, lrs: list[float]) -> Experiment:
    """A finished sweep of ``kind`` with a trial per lr, run in its folder as the runner would
    (trials with lr > 0.85 diverge and are FAILED); the full sweep's trials ran full.sh."""
    experiment = factories.make_experiment(
        project, kind=kind, state=RunState.COMPLETE, trials=len(lrs)
    )
    shutil.copytree(project.code_dir, experiment.output_dir / "code")
    stop = [] if kind == Experiment.Kind.SWEEP else ["--stop-after", "3"]
    for trial, lr in zip(experiment.trials.order_by("number"), lrs, strict=True):
        trial.run_dir.mkdir(parents=True)
        (trial.run_dir / "config.yaml").write_text(f"lr: {lr}\n")
        subprocess.run([sys.executable, "../code/train.py", *stop], cwd=trial.run_dir, check=True)
        if lr > 0.85:
            trial.state = RunState.FAILED
            trial.save()
    return experiment


def _check_sweep(tmp_path, name: str) -> str:
    out = io.StringIO()
    call_command("ranker_check", sweep=name, work=str(tmp_path / "work"), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_ranks_a_projects_runs_and_reuses_them(owner, tmp_path):
    project = factories.make_project(owner, template="", files=FILES)
    report = _check(tmp_path, project.slug)

    assert f"{project.slug}: 8 of 8 runs to train" in report
    with open(tmp_path / "work" / "ranker-check.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    for row in rows:
        lr = float(row["lr"])
        level = 1 + 3 * abs(lr - 0.3)
        if lr > 0.85:  # diverged: last, whatever its earlier epochs were
            assert float(row["final_best"]) == float("inf")
        else:
            assert float(row["final_best"]) == pytest.approx(level * (0.5 + 1 / 10), rel=1e-5)
        assert float(row["best_so_far"]) == pytest.approx(level * (0.5 + 1 / 3), rel=1e-5)
        assert float(row["score"]) > 0
    assert sum(float(r["final_best"]) == float("inf") for r in rows) == 1  # lr 0.892
    # One curve shape at different levels: both orders are exactly right.
    assert "| score | 1.000 | 1.000 |" in report
    assert "| best_so_far | 1.000 | 1.000 |" in report
    assert "first 3 epochs scored" in report
    # The same shape again: the others' final/score ratio predicts each run exactly.
    assert "each of 7 runs from the other runs (leave one out): median error 0%" in report

    again = _check(tmp_path, project.slug, configs=10)
    assert f"{project.slug}: 2 of 10 runs to train" in again  # the first 8 are kept


@pytest.mark.django_db
def test_refuses_a_project_it_cannot_check(owner, tmp_path):
    with pytest.raises(CommandError, match="no project 'nope'"):
        _check(tmp_path, "nope")
    no_fast = factories.make_project(
        owner, template="", files={k: v for k, v in FILES.items() if k != "fast.sh"}
    )
    with pytest.raises(CommandError, match=r"code/ has no fast\.sh"):
        _check(tmp_path / "a", no_fast.slug)
    bad = factories.make_project(
        owner, template="", files={**FILES, "sweep.yaml": "parameters:\n  lr: {min: 1}\n"}
    )
    with pytest.raises(CommandError, match=r"sweep\.yaml line 2"):
        _check(tmp_path / "b", bad.slug)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", [Experiment.Kind.SWEEP, Experiment.Kind.FAST_SWEEP])
def test_checks_a_finished_sweeps_configs(owner, tmp_path, kind):
    project = factories.make_project(owner, template="", files=FILES)
    experiment = _sweep(project, kind, [0.6, 0.1, 0.95, 0.3])
    name = f"{project.slug}/exp{experiment.number}"

    report = _check_sweep(tmp_path, name)

    # The failed trial is left out; a full sweep's trials are already trained.
    trained = 0 if kind == Experiment.Kind.SWEEP else 3
    assert f"{project.slug}-exp{experiment.number}: {trained} of 3 runs to train" in report
    with open(tmp_path / "work" / "ranker-check.csv") as fh:
        rows = {r["run"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["run-000", "run-001", "run-003"]
    for run, lr in (("run-000", 0.6), ("run-001", 0.1), ("run-003", 0.3)):
        level = 1 + 3 * abs(lr - 0.3)
        assert float(rows[run]["final_best"]) == pytest.approx(level * 0.6, rel=1e-5)
        assert float(rows[run]["best_so_far"]) == pytest.approx(level * (0.5 + 1 / 3), rel=1e-5)
    assert "| score | 1.000 | 1.000 | 0.6000 | +0.0% |" in report
    # The second table: shares of the 10 epochs, each picking the true best here.
    assert "At shares of the 10 epochs" in report
    for share, epochs in (("10%", 1), ("30%", 3), ("70%", 7)):
        assert f"| {share} | {epochs} | 1.000 | 1.000 | 1.000 | +0.0% | +0.0% |" in report

    again = _check_sweep(tmp_path, name)
    assert "0 of 3 runs to train" in again


@pytest.mark.django_db
def test_refuses_what_is_not_a_finished_sweep(owner, tmp_path):
    project = factories.make_project(owner, template="", files=FILES)
    single = factories.make_experiment(project, state=RunState.COMPLETE)
    queued = factories.make_experiment(project, kind=Experiment.Kind.SWEEP, trials=2)
    with pytest.raises(CommandError, match=r"expected SLUG/expN"):
        _check_sweep(tmp_path, "exp3")
    with pytest.raises(CommandError, match=rf"{project.slug}/exp99: no such experiment"):
        _check_sweep(tmp_path, f"{project.slug}/exp99")
    with pytest.raises(CommandError, match=r"a Training run, not a sweep"):
        _check_sweep(tmp_path, f"{project.slug}/exp{single.number}")
    with pytest.raises(CommandError, match=r"no code snapshot"):
        _check_sweep(tmp_path / "q", f"{project.slug}/exp{queued.number}")
    shutil.copytree(project.code_dir, queued.output_dir / "code")
    with pytest.raises(CommandError, match=r"no completed trial"):
        _check_sweep(tmp_path / "q", f"{project.slug}/exp{queued.number}")


def test_fast_epochs_reads_the_fast_script():
    assert fast_epochs("python ../code/train.py --epochs 3\n") == 3
    assert fast_epochs('python train.py --epochs 40 --stop-after 4 "$@"\n') == 4
    with pytest.raises(CommandError, match=r"fast\.sh"):
        fast_epochs("python train.py\n")


class _ScoredRuns:
    """Ten runs with finals 1..10 whose score and best so far order all but the best three."""

    def __init__(self) -> None:
        import numpy as np
        import pandas as pd

        self.histories = [pd.DataFrame({"epoch": range(10)})]
        self.finals = np.arange(1.0, 11.0)
        self.order = np.array([3.0, 2.0, 1.0, *range(4, 11)])  # the best three reversed

    def at(self, epochs: int):
        return self.order, self.order


def test_leaders_table_ranks_the_best_runs_apart():
    # Over all ten runs the order looks good; among the three that end best it is reversed,
    # and the pick ends 200% above the true best: the "best 30%" column shows why.
    table = Command._leaders(_ScoredRuns())
    assert "among the 3 runs that end best" in table
    assert "| 10% | 1 | 0.952 | -1.000 | -1.000 | +200.0% | +200.0% |" in table


@pytest.mark.django_db
def test_refuses_kept_runs_of_code_that_changed_since(owner, tmp_path):
    project = factories.make_project(owner, template="", files=FILES)
    _check(tmp_path, project.slug, configs=2)
    (project.code_dir / "train.py").write_text(TRAIN.replace("0.5 + 1", "0.4 + 1"))
    # Scoring the kept runs now would report on code that is not the project's any more.
    with pytest.raises(
        CommandError, match=r"trained with other code than .*\(changed: train\.py\)"
    ):
        _check(tmp_path, project.slug, configs=2)
    (project.code_dir / "train.py").write_text(TRAIN)  # back as it was: the runs are reused
    assert f"{project.slug}: 0 of 2 runs to train" in _check(tmp_path, project.slug, configs=2)
