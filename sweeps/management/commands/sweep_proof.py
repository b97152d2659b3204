"""``manage.py sweep_proof``: full sweep vs Fast Sweep vs Optuna pruners, on real runs."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from luminide.models import ComputeNode, Project
from luminide.workspace import create_project, list_templates
from sweeps.proof import ProofError, compare_sweeps, results_markdown


class Command(BaseCommand):
    help = (
        "Measure the Fast Sweep against a full sweep (and Optuna's MedianPruner and "
        "HyperbandPruner at the Fast Sweep's epoch budget) on fresh projects from code "
        "templates. Needs running workers (`make run` in another terminal)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--template", action="append", choices=list_templates(), help="repeatable"
        )
        parser.add_argument("--trials", type=int, default=25)
        parser.add_argument("--parallel", type=int, default=1)
        parser.add_argument("--seed", type=int, action="append", help="repeatable (default 0 1)")
        parser.add_argument("--no-baselines", action="store_true", help="skip the Optuna pruners")
        parser.add_argument("--timeout", type=float, default=4 * 3600, help="per sweep, seconds")
        parser.add_argument("--out", default="bench-results/sweep-proof.md")
        parser.add_argument(
            "--project", help="resume in this project (its finished full sweep is reused)"
        )
        parser.add_argument("--full-only", action="store_true", help="only the full sweep")
        parser.add_argument(
            "--seed-check",
            type=int,
            default=0,
            metavar="K",
            help="also train both sweeps' chosen configs with K other seeds and compare means",
        )

    def handle(self, *args, **options) -> None:
        cutoff = timezone.now() - timezone.timedelta(minutes=2)
        if not ComputeNode.objects.filter(last_heartbeat__gte=cutoff).exists():
            raise CommandError("no live worker: start `make run` (or `make worker`) first")
        owner, _ = get_user_model().objects.get_or_create(username="sweep-proof")
        results = []
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        resume = None
        if options["project"]:
            resume = Project.objects.filter(slug=options["project"]).first()
            if resume is None:
                raise CommandError(f"--project: no project {options['project']!r}")
        templates = [resume.template] if resume else options["template"] or list_templates()
        for template in templates:
            for seed in options["seed"] or [0, 1]:
                project = resume or create_project(
                    owner, f"proof-{template}-s{seed}-{stamp}", f"sweep proof {template}", template
                )
                self.stdout.write(f"{template} seed {seed}: project {project.slug}")
                try:
                    results += compare_sweeps(
                        project,
                        trials=options["trials"],
                        parallel=options["parallel"],
                        seed=seed,
                        timeout=options["timeout"],
                        baselines=not options["no_baselines"],
                        full_only=options["full_only"],
                        seeds=options["seed_check"],
                    )
                except ProofError as exc:
                    raise CommandError(str(exc)) from None
                table = results_markdown(results)
                out = Path(options["out"])
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(table)
                self.stdout.write(table)
