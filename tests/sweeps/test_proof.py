"""The sweep proof's Optuna-pruner baseline: real subprocesses, budget kept, pruning stops runs.

The training script is a tiny synthetic one (no torch) so the test takes seconds; the full
proof on real templates is ``manage.py sweep_proof``.
"""

from __future__ import annotations

import optuna
import pytest

from sweeps.proof import MethodResult, results_markdown, run_pruner_baseline
from sweeps.search_space import parse_config_yaml, parse_sweep_yaml
from tests import factories

TRAIN = """\
import time, yaml
cfg = yaml.safe_load(open("config.yaml"))
with open("history.csv", "w", buffering=1) as fh:
    fh.write("index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n")
    for epoch in range(10):
        time.sleep(0.05)
        loss = abs(cfg["lr"] - 0.3) + 1.0 / (epoch + 1)
        fh.write(f"{epoch},{epoch},100,{loss},,{loss}\\n")
"""
SWEEP = "parameters:\n  lr: {distribution: uniform, min: 0.0, max: 1.0}\n"


@pytest.mark.django_db
def test_pruner_baseline_spends_exactly_the_budget(owner):
    project = factories.make_project(
        owner,
        template="",
        files={
            "train.py": TRAIN,
            "full.sh": "python ../code/train.py\n",
            "sweep.yaml": SWEEP,
            "config.yaml": "lr: 0.5\n",
        },
    )
    result = run_pruner_baseline(
        project,
        name="MedianPruner",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        space=parse_sweep_yaml(SWEEP),
        defaults=parse_config_yaml("lr: 0.5\n"),
        budget=60,
        seed=0,
    )
    assert result.epochs == 60
    assert result.val_loss is not None and result.val_loss < 1.0
    trials, pruned, completed = (int(part.split()[0]) for part in result.note.split(", "))
    assert completed >= 2 and pruned >= 1, result.note
    # Pruned trials were stopped early: fewer epochs than trials x 10.
    assert trials * 10 > result.epochs


def test_results_table_is_relative_to_the_full_sweep():
    table = results_markdown(
        [
            MethodResult("t", 0, "Full sweep", 1000, 600.0, 0.50),
            MethodResult("t", 0, "Luminide Fast Sweep (total)", 130, 90.0, 0.505, "7.7x fewer"),
            MethodResult("t", 0, "Optuna TPE + MedianPruner", 130, 80.0, None, "0 completed"),
        ]
    )
    rows = table.splitlines()
    assert "| t | 0 | Full sweep | 1000 | 600 | 0.5000 | +0.0% |" in rows[2]
    assert "| 130 | 90 | 0.5050 | +1.0% | 7.7x fewer |" in rows[3]
    assert "| — |  | 0 completed |" in rows[4]
