"""``manage.py ranker_check`` on a project: trains sampled configs, scores their first epochs.

The training script is a tiny synthetic one (no torch) whose curves all have one shape at
different levels, so the true order is known at every epoch; the check on the real
templates is in docs/ranking.md.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from sweeps.management.commands.ranker_check import fast_epochs
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


def test_fast_epochs_reads_the_fast_script():
    assert fast_epochs("python ../code/train.py --epochs 3\n") == 3
    assert fast_epochs('python train.py --epochs 40 --stop-after 4 "$@"\n') == 4
    with pytest.raises(CommandError, match=r"fast\.sh"):
        fast_epochs("python train.py\n")
