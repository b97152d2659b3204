"""Create the demo user and the demo project (idempotent; run by ``make run``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from luminide.demo import DEMO_PASSWORD, DEMO_PROJECT, DEMO_TEMPLATE, DEMO_USERNAME
from luminide.models import Project
from luminide.workspace import create_project, populate_project_dirs


class Command(BaseCommand):
    help = (
        "Create user 'demo' (a normal user: use `manage.py createsuperuser` for the admin "
        "console) and project 'demo' from the image-classification template. Safe to rerun."
    )

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user = User.objects.create_user(DEMO_USERNAME, password=DEMO_PASSWORD)
            self.stdout.write(f"created user {DEMO_USERNAME!r}")
        project = Project.objects.filter(slug=DEMO_PROJECT).first()
        if project is None:
            create_project(user, DEMO_PROJECT, "Demo: digits classification", DEMO_TEMPLATE)
            self.stdout.write(f"created project {DEMO_PROJECT!r} from {DEMO_TEMPLATE!r}")
        elif not project.code_dir.exists() or not project.input_dir.exists():
            # The row survived but the data folder was wiped: recreate the folders.
            populate_project_dirs(project)
            self.stdout.write(f"restored the folders of project {DEMO_PROJECT!r}")
        else:
            self.stdout.write("demo user and project already exist")
