"""``manage.py run_experiment --project SLUG [--fast] [--description TEXT] [--wait]``."""

from __future__ import annotations

from django.core.management.base import CommandError

from sweeps.actions import do_start_experiment
from sweeps.management.commands._experiment_command import ExperimentCommand
from sweeps.models import Experiment


class Command(ExperimentCommand):
    help = (
        "Start a training run of a project (full.sh, or fast.sh with --fast) on the worker "
        "queue; with --wait, follow it and exit non-zero unless it completes."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--fast", action="store_true", help="run fast.sh (Fast Training)")

    def handle(self, *args, **options) -> None:
        project = self.get_project(options["project"])
        try:
            experiment = do_start_experiment(
                project, project.owner, fast=options["fast"], description=options["description"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{project.slug}/{experiment.name} queued (experiment #{experiment.number})"
        )
        self.stdout.write(f"output: {experiment.output_dir}")
        if not options["wait"]:
            return
        last_state = experiment.state

        def progress(exp: Experiment) -> None:
            nonlocal last_state
            if exp.state != last_state:
                self.stdout.write(f"{exp.name}: {exp.state}")
                last_state = exp.state

        def summary(exp: Experiment) -> list[str]:
            trial = exp.trials.order_by("number").first()
            best = exp.best_value
            return [
                f"{exp.name} {exp.state}"
                + (f"; best val loss {best:.4g}" if best is not None else "")
                + (
                    f"; {trial.epochs_done} epochs, {trial.rows_stored} history rows"
                    if trial
                    else ""
                ),
                f"output: {exp.output_dir}",
            ]

        self.follow(experiment, options["timeout"], progress, summary)
