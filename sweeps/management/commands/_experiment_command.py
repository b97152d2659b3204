"""What ``run_experiment`` and ``sweep`` share: their common options, the project lookup, and
following an experiment to its end with ``--wait``."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from luminide.models import Project
from sweeps.models import ACTIVE_STATES, Experiment, RunState


class ExperimentCommand(BaseCommand):
    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--description", default="")
        parser.add_argument("--wait", action="store_true", help="wait until it finishes")
        parser.add_argument(
            "--timeout", type=float, default=None, help="with --wait: give up after N seconds"
        )

    def get_project(self, slug: str) -> Project:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"--project: no project {slug!r}")
        return project

    def follow(
        self,
        experiment: Experiment,
        timeout: float | None,
        progress: Callable[[Experiment], None],
        summary: Callable[[Experiment], list[str]],
    ) -> None:
        """Poll ``experiment`` until it ends (``progress`` after each poll), print
        ``summary``, and fail unless it completed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            experiment.refresh_from_db()
            progress(experiment)
            if experiment.state not in ACTIVE_STATES:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"{experiment.name} still {experiment.state} after {timeout} s")
            time.sleep(0.5)
        for line in summary(experiment):
            self.stdout.write(line)
        if experiment.state != RunState.COMPLETE:
            raise CommandError(f"{experiment.name} {experiment.state}: {experiment.failure_reason}")
