"""The sweep proof's Optuna-pruner baseline (real subprocesses, budget kept, pruning stops
runs) and its seed check.

The training script is a tiny synthetic one (no torch) so the test takes seconds; the full
proof on real templates is ``manage.py sweep_proof``.
"""

from __future__ import annotations

import optuna
import pytest

from sweeps.models import Experiment, RunState
from sweeps.proof import (
    MethodResult,
    ProofError,
    compare_sweeps,
    results_markdown,
    run_pruner_baseline,
    seed_check,
)
from sweeps.search_space import parse_config_yaml, parse_sweep_yaml
from tests import factories

TRAIN = """\
import time, yaml
cfg = yaml.safe_load(open("config.yaml"))
with open("history.csv", "w", buffering=1) as fh:
    fh.write("index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\\n")
    for epoch in range(10):
        time.sleep(0.05)
        loss = abs(cfg["lr"] - 0.3) + 1.0 / (epoch + 1) + 0.01 * cfg.get("seed", 0)
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


@pytest.mark.django_db
def test_seed_check_trains_each_chosen_config_with_other_seeds(owner):
    project = factories.make_project(
        owner, template="", files={"train.py": TRAIN, "full.sh": "python ../code/train.py\n"}
    )
    chosen = {}
    for method, kind, lr, first in (
        ("Full sweep's config", Experiment.Kind.SWEEP, 0.3, 0.1),
        ("Fast Sweep's config", Experiment.Kind.FAST_SWEEP, 0.4, 0.2),
    ):
        sweep = factories.make_experiment(project, kind=kind, state=RunState.COMPLETE)
        sweep.output_dir.mkdir(parents=True)
        (sweep.output_dir / "config-tuned.yaml").write_text(f"lr: {lr}\nseed: 5\n")
        chosen[method] = (sweep, first)

    full, fast = seed_check(project, chosen, seeds=2, jobs=2)

    # Seeds 6 and 7 end 0.06 and 0.07 above the config's level (lr 0.3: 0.1, lr 0.4: 0.2).
    assert full.method == "Full sweep's config, mean of 3 seeds"
    assert full.val_loss == pytest.approx((0.1 + 0.16 + 0.17) / 3)
    assert fast.val_loss == pytest.approx((0.2 + 0.26 + 0.27) / 3)
    assert fast.note == "per seed 0.2000, 0.2600, 0.2700"
    assert full.epochs == fast.epochs == 20  # the two extra runs of 10 epochs
    table = results_markdown([full, fast])  # the means compared, not the single runs
    assert "| 20 |" in table and "| 0.1433 | +0.0% |" in table and "| 0.2433 | +69.8% |" in table
    runs = sorted(p.name for p in (project.output_dir / "seed-check").glob("exp*"))
    assert runs == [f"{s.name}-seed{k}" for s, _ in chosen.values() for k in (6, 7)]

    # Kept runs are reused, not trained again.
    history = project.output_dir / "seed-check" / runs[0] / "history.csv"
    history.write_text(history.read_text().replace("0.16", "0.15"))
    again, _ = seed_check(project, chosen, seeds=2, jobs=2)
    assert again.val_loss == pytest.approx((0.1 + 0.15 + 0.17) / 3)


@pytest.mark.django_db
def test_seed_check_trains_a_failed_run_again_instead_of_keeping_it(owner):
    # Seed 6 exits non-zero after its epochs (a crash, or Ctrl-C): its history is not a result.
    crashing = 'python ../code/train.py\n! grep -q "seed: 6" config.yaml\n'
    project = factories.make_project(
        owner, template="", files={"train.py": TRAIN, "full.sh": crashing}
    )
    sweep = factories.make_experiment(project, kind=Experiment.Kind.SWEEP, state=RunState.COMPLETE)
    sweep.output_dir.mkdir(parents=True)
    (sweep.output_dir / "config-tuned.yaml").write_text("lr: 0.3\nseed: 5\n")
    chosen = {"Full sweep's config": (sweep, 0.1)}

    (failed,) = seed_check(project, chosen, seeds=1, jobs=1)
    assert failed.val_loss is None and failed.note == "per seed 0.1000, failed"
    run = project.output_dir / "seed-check" / f"{sweep.name}-seed6"
    assert (run / "history.csv").exists() and not (run / "done").exists()

    (project.code_dir / "full.sh").write_text("python ../code/train.py\n")
    (again,) = seed_check(project, chosen, seeds=1, jobs=1)
    assert again.val_loss == pytest.approx((0.1 + 0.16) / 2)
    assert (run / "done").exists()


@pytest.mark.django_db
def test_seed_check_needs_a_seed_in_the_config(owner):
    project = factories.make_project(
        owner,
        template="",
        files={"full.sh": "true\n", "sweep.yaml": SWEEP, "config.yaml": "lr: 0.5\n"},
    )
    with pytest.raises(ProofError, match=r"config\.yaml has no `seed`"):
        compare_sweeps(project, trials=2, parallel=1, seed=0, timeout=5, baselines=False, seeds=2)
    assert not project.experiments.exists()  # refused before any sweep started
