"""``manage.py sweep --project SLUG --trials N [--fast] [--parallel K] [--wait]``."""

from __future__ import annotations

from django.core.management.base import CommandError

from sweeps.management.commands._experiment_command import ExperimentCommand
from sweeps.models import ACTIVE_STATES, Experiment
from sweeps.search_space import YamlFileError
from sweeps.sweep import TUNED_CONFIG, SweepError, do_start_sweep


class Command(ExperimentCommand):
    help = (
        "Start a hyperparameter sweep over the project's sweep.yaml (full.sh per trial, or "
        "fast.sh ranked by Early Ranking with --fast); with --wait, follow it to the end."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--trials", type=int, required=True, help="number of trials")
        parser.add_argument(
            "--fast", action="store_true", help="Fast Sweep (fast.sh + Early Ranking)"
        )
        parser.add_argument("--parallel", type=int, default=1, help="trials queued at once")
        parser.add_argument("--seed", type=int, default=None, help="seed of the TPE sampler")

    def handle(self, *args, **options) -> None:
        project = self.get_project(options["project"])
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
            self.follow(experiment, options["timeout"], self._report_trials(), self._summary)

    def _report_trials(self):
        """Prints each trial once, when its result has been told to the study."""
        reported: set[int] = set()

        def progress(experiment: Experiment) -> None:
            for trial in experiment.trials.exclude(state__in=ACTIVE_STATES).order_by("number"):
                if trial.number in reported or not trial.metadata.get("told", False):
                    continue
                reported.add(trial.number)
                value = "" if trial.value is None else f" value {trial.value:.4g}"
                reason = (
                    f" ({trial.failure_reason.splitlines()[-1]})" if trial.failure_reason else ""
                )
                self.stdout.write(f"trial {trial.number}: {trial.state}{value}{reason}")

        return progress

    @staticmethod
    def _summary(experiment: Experiment) -> list[str]:
        best = experiment.best_value
        lines = [
            f"{experiment.name} {experiment.state}"
            + (f"; best objective {best:.4g}" if best is not None else "")
        ]
        tuned = experiment.output_dir / TUNED_CONFIG
        if tuned.exists():
            lines.append(f"tuned config: {tuned}")
        return lines
