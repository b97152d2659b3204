"""Does the Fast Sweep find as good a config as a full sweep, for far fewer epochs?

:func:`compare_sweeps` answers it on a code template, end to end on the real platform
(workers, Optuna studies, Early Ranking): a full sweep, a Fast Sweep, then a full training
with the Fast Sweep's ``config-tuned.yaml``. As baselines, Optuna's own ``MedianPruner``
and ``HyperbandPruner`` get the Fast Sweep's epoch budget (its trials plus the final
training): they run ``full.sh`` trials here, report each epoch's validation loss, and have
a trial's process stopped when the pruner says so.

``manage.py sweep_proof`` prints the table that the README quotes.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from django.utils import timezone

from luminide.launcher import stop_process_group
from luminide.models import Project
from sweeps import actions
from sweeps.models import ACTIVE_STATES, Experiment, RunState
from sweeps.runner import run_full_sh, script_env
from sweeps.search_space import SearchSpace
from sweeps.sweep import TUNED_CONFIG, do_start_sweep, load_sweep_files


class ProofError(ValueError):
    """The proof cannot run on this project as asked."""


@dataclass
class MethodResult:
    """What one tuning method cost and what it reached (val loss of its final model)."""

    task: str
    seed: int
    method: str
    epochs: int
    seconds: float
    val_loss: float | None
    note: str = ""
    compared_with: str = "Full sweep"  # the method of the same task and seed


def _wait(experiment: Experiment, timeout: float) -> Experiment:
    deadline = time.monotonic() + timeout
    while True:
        experiment.refresh_from_db()
        if experiment.state not in ACTIVE_STATES:
            return experiment
        if time.monotonic() > deadline:
            raise TimeoutError(f"{experiment} still {experiment.state} after {timeout:.0f} s")
        time.sleep(1.0)


def _epochs_spent(experiment: Experiment) -> int:
    return sum(t.epochs_done for t in experiment.trials.all())


def _seconds(experiment: Experiment) -> float:
    if not experiment.started_at or not experiment.finished_at:
        return 0.0
    return (experiment.finished_at - experiment.started_at).total_seconds()


def wait_for_ranker(timeout: float, poll: float = 30.0) -> None:
    """A Fast Sweep needs the Early Ranking model; wait for it to be installed."""
    from ranking import EarlyRanker

    deadline = time.monotonic() + timeout
    while True:
        try:
            EarlyRanker.load()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(poll)


def run_sweep(
    project: Project, *, fast: bool, trials: int, parallel: int, seed: int, timeout: float
) -> tuple[Experiment, MethodResult]:
    """Run a sweep on the workers and wait for it."""
    exp = do_start_sweep(
        project,
        project.owner,
        n_trials=trials,
        parallel=parallel,
        fast=fast,
        seed=seed,
        description=f"sweep_proof {'fast' if fast else 'full'} seed {seed}",
    )
    exp = _wait(exp, timeout)
    return exp, _sweep_result(project, exp, fast=fast, seed=seed)


def train_with_tuned_config(project: Project, sweep: Experiment, timeout: float) -> MethodResult:
    """Copy the sweep's ``config-tuned.yaml`` into ``code/`` and run the full training."""
    config = project.code_dir / "config.yaml"
    original = config.read_text()
    config.write_text((sweep.output_dir / TUNED_CONFIG).read_text())
    try:
        exp = actions.do_start_experiment(project, project.owner, description="tuned by Fast Sweep")
        exp = _wait(exp, timeout)
    finally:
        config.write_text(original)  # a resumed proof starts from the same defaults
    return MethodResult(
        task=project.template,
        seed=sweep.spec.get("seed") or 0,
        method="Full training with tuned config",
        epochs=_epochs_spent(exp),
        seconds=_seconds(exp),
        val_loss=exp.best_value,
    )


def _epoch_val_losses(history_csv: Path) -> list[float]:
    """Validation loss of each finished epoch so far (what a pruner is told)."""
    from ranking import read_history

    if not history_csv.exists():
        return []
    try:
        df = read_history(history_csv, errors="skip")
    except ValueError:
        return []  # header not written yet
    per_epoch = df.dropna(subset=["epoch_val_loss"]).groupby("epoch")["epoch_val_loss"].last()
    return [float(v) for v in per_epoch.to_numpy()]


def _runs_folder(project: Project, name: str) -> Path:
    """``output/NAME``, with ``code`` and ``input`` beside the run folders it will hold (as
    ``full.sh`` expects ``../code``)."""
    root = project.output_dir / name
    root.mkdir(parents=True, exist_ok=True)
    for link in ("code", "input"):
        if not (root / link).exists():
            (root / link).symlink_to(f"../../{link}")
    return root


def run_pruner_baseline(
    project: Project,
    *,
    name: str,
    pruner: optuna.pruners.BasePruner,
    space: SearchSpace,
    defaults: dict,
    budget: int,
    seed: int,
) -> MethodResult:
    """TPE + ``pruner`` on ``full.sh`` trials until ``budget`` epochs are spent."""
    root = _runs_folder(project, f"{name.lower()}-seed{seed}")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    spent, started = 0, time.monotonic()
    env = script_env()
    while spent < budget:
        trial = study.ask(space.distributions)
        run_dir = root / f"trial{trial.number}"
        run_dir.mkdir(exist_ok=True)
        config = space.trial_config(defaults, trial.params)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        with open(run_dir / "log.txt", "wb") as log:
            proc = subprocess.Popen(
                ["bash", "../code/full.sh"],
                cwd=run_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        reported, outcome = 0, None
        while outcome is None:
            exited = proc.poll() is not None
            losses = _epoch_val_losses(run_dir / "history.csv")
            for epoch in range(reported, len(losses)):
                reported, spent = epoch + 1, spent + 1
                value = losses[epoch] if math.isfinite(losses[epoch]) else float("inf")
                trial.report(value, epoch)
                if trial.should_prune():
                    outcome = optuna.trial.TrialState.PRUNED
                elif spent >= budget:
                    outcome = optuna.trial.TrialState.FAIL  # budget ran out mid-trial
                if outcome is not None:
                    break
            if outcome is None and exited:
                outcome = optuna.trial.TrialState.COMPLETE
            if outcome is None:
                time.sleep(0.5)
        stop_process_group(proc, 10)
        finite = [v for v in losses[:reported] if math.isfinite(v)]
        if outcome == optuna.trial.TrialState.COMPLETE and finite:
            study.tell(trial, min(finite))
        else:
            fail = outcome == optuna.trial.TrialState.COMPLETE
            study.tell(trial, state=optuna.trial.TrialState.FAIL if fail else outcome)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return MethodResult(
        task=project.template,
        seed=seed,
        method=f"Optuna TPE + {name}",
        epochs=spent,
        seconds=time.monotonic() - started,
        val_loss=min(t.value for t in completed) if completed else None,
        note=f"{len(study.trials)} trials, {pruned} pruned, {len(completed)} completed",
    )


def finished_full_sweep(project: Project, *, trials: int, seed: int) -> Experiment | None:
    """A completed full sweep of ``project`` with these settings (a proof resumed later)."""
    for exp in project.experiments.filter(kind=Experiment.Kind.SWEEP, state=RunState.COMPLETE):
        if exp.spec.get("n_trials") == trials and exp.spec.get("seed") == seed:
            return exp
    return None


def _sweep_result(project: Project, exp: Experiment, *, fast: bool, seed: int) -> MethodResult:
    best = exp.trials.filter(state=RunState.COMPLETE, value__isnull=False).order_by("value").first()
    return MethodResult(
        task=project.template,
        seed=seed,
        method="Fast Sweep trials" if fast else "Full sweep",
        epochs=_epochs_spent(exp),
        seconds=_seconds(exp),
        val_loss=best.best_val_loss if best else None,
        note=f"{exp.trials.filter(state=RunState.FAILED).count()} failed",
    )


def _train_config(run_dir: Path, config: dict) -> tuple[float | None, int]:
    """Train ``config`` with ``full.sh`` in ``run_dir``; its best epoch val loss (None if the
    run failed) and its epochs. A completed run is kept and reused; a failed or interrupted
    one is trained again next time, not read as finished."""
    done = run_dir / "done"
    completed = done.exists()
    if not completed:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        completed = run_full_sh(run_dir, run_dir / "log.txt") == 0
        if completed:
            done.touch()
    losses = _epoch_val_losses(run_dir / "history.csv")
    finite = [v for v in losses if math.isfinite(v)]
    return (min(finite) if finite and completed else None), len(losses)


def seed_check(
    project: Project, chosen: dict[str, tuple[Experiment, float]], *, seeds: int, jobs: int
) -> list[MethodResult]:
    """Train each sweep's chosen config (its ``config-tuned.yaml``) again with the config's
    ``seed`` + 1 .. + ``seeds``, ``jobs`` at a time.

    One training's final val loss moves with its seed, and a sweep's best is the luckiest
    of its trials, so the configs are also compared on the mean over seeds. ``chosen``:
    method name -> (sweep, val loss of the run already done with the config's own seed); the
    first is the one the others are compared with. The epochs are the check's extra runs.
    """
    root = _runs_folder(project, "seed-check")
    runs = {}
    for method, (sweep, _) in chosen.items():
        config = yaml.safe_load((sweep.output_dir / TUNED_CONFIG).read_text())
        for k in range(1, seeds + 1):
            name = f"{sweep.name}-seed{int(config['seed']) + k}"
            runs[method, k] = (root / name, {**config, "seed": int(config["seed"]) + k})
    started = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        finals = dict(zip(runs, pool.map(lambda r: _train_config(*r), runs.values()), strict=True))
    seconds = time.monotonic() - started
    names = {method: f"{method}, mean of {seeds + 1} seeds" for method in chosen}
    results = []
    for method, (sweep, first) in chosen.items():
        extra = [finals[method, k] for k in range(1, seeds + 1)]
        losses = [first, *(loss for loss, _ in extra)]
        valid = [v for v in losses if v is not None]
        results.append(
            MethodResult(
                task=project.template,
                seed=sweep.spec.get("seed") or 0,
                method=names[method],
                epochs=sum(epochs for _, epochs in extra),
                seconds=seconds,
                val_loss=statistics.fmean(losses) if len(valid) == len(losses) else None,
                note="per seed " + ", ".join("failed" if v is None else f"{v:.4f}" for v in losses),
                compared_with=names[next(iter(chosen))],
            )
        )
    return results


def compare_sweeps(
    project: Project,
    *,
    trials: int,
    parallel: int,
    seed: int,
    timeout: float,
    baselines: bool,
    full_only: bool = False,
    seeds: int = 0,
) -> list[MethodResult]:
    """Full sweep, Fast Sweep + tuned full training, and the pruner baselines on ``project``.

    A completed full sweep with the same settings is reused; ``full_only`` stops after it.
    ``seeds`` > 0 adds :func:`seed_check` of both sweeps' chosen configs.
    """
    space, defaults, _ = load_sweep_files(project)
    if seeds and "seed" not in defaults:
        raise ProofError(f"{project.code_dir / 'config.yaml'} has no `seed` for the seed check")
    full_sweep = finished_full_sweep(project, trials=trials, seed=seed)
    if full_sweep is None:
        full_sweep, full = run_sweep(
            project, fast=False, trials=trials, parallel=parallel, seed=seed, timeout=timeout
        )
    else:
        full = _sweep_result(project, full_sweep, fast=False, seed=seed)
    if full_only:
        return [full]
    wait_for_ranker(timeout)
    fast_sweep, fast = run_sweep(
        project, fast=True, trials=trials, parallel=parallel, seed=seed, timeout=timeout
    )
    final = train_with_tuned_config(project, fast_sweep, timeout)
    total = MethodResult(
        task=project.template,
        seed=seed,
        method="Luminide Fast Sweep (total)",
        epochs=fast.epochs + final.epochs,
        seconds=fast.seconds + final.seconds,
        val_loss=final.val_loss,
        note=f"{full.epochs / max(1, fast.epochs + final.epochs):.1f}x fewer epochs",
    )
    results = [full, fast, final, total]
    if seeds:
        chosen = {
            "Full sweep's config": (full_sweep, full.val_loss),
            "Fast Sweep's config": (fast_sweep, final.val_loss),
        }
        results += seed_check(project, chosen, seeds=seeds, jobs=parallel)
    if baselines:
        budget = total.epochs
        # Hyperband's max resource: the epochs of a full training.
        full_epochs = max((t.epochs_done for t in full_sweep.trials.all()), default=1)
        pruners = {
            "MedianPruner": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
            "HyperbandPruner": optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=full_epochs, reduction_factor=3
            ),
        }
        for name, pruner in pruners.items():
            results.append(
                run_pruner_baseline(
                    project,
                    name=name,
                    pruner=pruner,
                    space=space,
                    defaults=defaults,
                    budget=budget,
                    seed=seed,
                )
            )
    return results


def results_markdown(results: list[MethodResult]) -> str:
    """The comparison as a markdown table, relative to each task/seed's full sweep."""
    lines = [
        "| task | seed | method | epochs | wall (s) | final val loss | vs full sweep | notes |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    reference = {(r.task, r.seed, r.method): r.val_loss for r in results}
    for r in results:
        ref = reference.get((r.task, r.seed, r.compared_with))
        rel = ""
        if r.val_loss is not None and ref:
            rel = f"{(r.val_loss - ref) / ref:+.1%}"
        loss = "—" if r.val_loss is None else f"{r.val_loss:.4f}"
        lines.append(
            f"| {r.task} | {r.seed} | {r.method} | {r.epochs} | {r.seconds:.0f} | {loss} "
            f"| {rel} | {r.note} |"
        )
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(lines) + f"\n\nMeasured {stamp} by `python manage.py sweep_proof`.\n"
