"""``manage.py run_experiment --project SLUG [--fast] [--description TEXT] [--wait]``."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from luminide.models import Project
from sweeps.actions import do_start_experiment
from sweeps.models import ACTIVE_STATES, Experiment, RunState


class Command(BaseCommand):
    help = (
        "Start a training run of a project (full.sh, or fast.sh with --fast) on the worker "
        "queue; with --wait, follow it and exit non-zero unless it completes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--fast", action="store_true", help="run fast.sh (Fast Training)")
        parser.add_argument("--description", default="")
        parser.add_argument("--wait", action="store_true", help="wait until it finishes")
        parser.add_argument(
            "--timeout", type=float, default=None, help="with --wait: give up after N seconds"
        )

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"--project: no project {options['project']!r}")
        experiment = do_start_experiment(
            project, project.owner, fast=options["fast"], description=options["description"]
        )
        self.stdout.write(
            f"{project.slug}/{experiment.name} queued (experiment #{experiment.number})"
        )
        self.stdout.write(f"output: {experiment.output_dir}")
        if not options["wait"]:
            return
        deadline = None if options["timeout"] is None else time.monotonic() + options["timeout"]
        last_state = experiment.state
        while True:
            state = (
                Experiment.objects.filter(pk=experiment.pk).values_list("state", flat=True).get()
            )
            if state != last_state:
                self.stdout.write(f"{experiment.name}: {state}")
                last_state = state
            if state not in ACTIVE_STATES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"{experiment.name} still {state} after {options['timeout']} s")
            time.sleep(0.5)
        experiment.refresh_from_db()
        trial = experiment.trials.order_by("number").first()
        best = experiment.best_value
        self.stdout.write(
            f"{experiment.name} {experiment.state}"
            + (f"; best val loss {best:.4g}" if best is not None else "")
            + (f"; {trial.epochs_done} epochs, {trial.rows_stored} history rows" if trial else "")
        )
        self.stdout.write(f"output: {experiment.output_dir}")
        if experiment.state != RunState.COMPLETE:
            raise CommandError(f"{experiment.name} {experiment.state}: {experiment.failure_reason}")
