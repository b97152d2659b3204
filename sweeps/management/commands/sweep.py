"""``manage.py sweep --project SLUG --trials N [--fast] [--parallel K] [--wait]``."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from luminide.models import Project
from sweeps.models import ACTIVE_STATES, Experiment, RunState
from sweeps.search_space import YamlFileError
from sweeps.sweep import TUNED_CONFIG, SweepError, do_start_sweep


class Command(BaseCommand):
    help = (
        "Start a hyperparameter sweep over the project's sweep.yaml (full.sh per trial, or "
        "fast.sh ranked by Early Ranking with --fast); with --wait, follow it to the end."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--trials", type=int, required=True, help="number of trials")
        parser.add_argument(
            "--fast", action="store_true", help="Fast Sweep (fast.sh + Early Ranking)"
        )
        parser.add_argument("--parallel", type=int, default=1, help="trials queued at once")
        parser.add_argument("--seed", type=int, default=None, help="seed of the TPE sampler")
        parser.add_argument("--description", default="")
        parser.add_argument("--wait", action="store_true", help="wait until it finishes")
        parser.add_argument(
            "--timeout", type=float, default=None, help="with --wait: give up after N seconds"
        )

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"--project: no project {options['project']!r}")
        try:
            experiment = do_start_sweep(
                project,
                project.owner,
                n_trials=options["trials"],
                parallel=options["parallel"],
                fast=options["fast"],
                description=options["description"],
                seed=options["seed"],
            )
        except (YamlFileError, SweepError) as exc:
            raise CommandError(str(exc)) from None
        kind = "Fast Sweep" if options["fast"] else "sweep"
        self.stdout.write(
            f"{project.slug}/{experiment.name}: {kind} of {options['trials']} trials queued"
        )
        self.stdout.write(f"output: {experiment.output_dir}")
        if options["wait"]:
            self._follow(experiment, options["timeout"])

    def _follow(self, experiment: Experiment, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        reported: set[int] = set()
        while True:
            experiment.refresh_from_db()
            for trial in experiment.trials.exclude(state__in=ACTIVE_STATES).order_by("number"):
                if trial.number in reported or not trial.metadata.get("told", False):
                    continue
                reported.add(trial.number)
                value = "" if trial.value is None else f" value {trial.value:.4g}"
                reason = (
                    f" ({trial.failure_reason.splitlines()[-1]})" if trial.failure_reason else ""
                )
                self.stdout.write(f"trial {trial.number}: {trial.state}{value}{reason}")
            if experiment.state not in ACTIVE_STATES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"{experiment.name} still {experiment.state} after {timeout} s")
            time.sleep(0.5)
        best = experiment.best_value
        self.stdout.write(
            f"{experiment.name} {experiment.state}"
            + (f"; best objective {best:.4g}" if best is not None else "")
        )
        tuned = experiment.output_dir / TUNED_CONFIG
        if tuned.exists():
            self.stdout.write(f"tuned config: {tuned}")
        if experiment.state != RunState.COMPLETE:
            raise CommandError(f"{experiment.name} {experiment.state}: {experiment.failure_reason}")
