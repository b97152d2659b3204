"""Project creation, the demo bootstrap and the headless management commands."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from luminide.demo import DEMO_PASSWORD, DEMO_PROJECT, DEMO_USERNAME
from luminide.models import ApiToken, Project
from luminide.workspace import create_project, list_templates
from sweeps.models import Experiment, RunState

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_digits(monkeypatch):
    """Write 20 images instead of 1,797 (the writer's layout is what matters here)."""
    import numpy as np
    from sklearn import datasets

    real = datasets.load_digits

    def small(*args, **kwargs):
        d = real(*args, **kwargs)
        d.images, d.target = d.images[:20], d.target[:20]
        return d

    monkeypatch.setattr(datasets, "load_digits", small)
    return np


def test_templates_listed():
    assert "image-classification" in list_templates()


def test_create_project_from_template(owner, fast_digits):
    project = create_project(owner, "digits", "Digits", "image-classification")
    names = sorted(p.name for p in project.code_dir.iterdir())
    assert names == ["config.yaml", "fast.sh", "full.sh", "sweep.yaml", "train.py"]
    labels = (project.input_dir / "labels.csv").read_text().splitlines()
    assert labels[0] == "filename,label" and len(labels) == 21
    first = labels[1].split(",")[0]
    from PIL import Image

    with Image.open(project.input_dir / first) as img:
        assert img.size == (8, 8) and img.mode == "L"
    assert project.output_dir.is_dir()


def test_create_project_refuses_duplicates_and_unknown_templates(owner, fast_digits):
    create_project(owner, "one", "One", "")
    with pytest.raises(ValueError, match="slug"):
        create_project(owner, "one", "Again", "")
    with pytest.raises(ValueError, match="template"):
        create_project(owner, "two", "Two", "no-such-template")
    assert not Project.objects.filter(slug="two").exists()


def test_bootstrap_demo_is_idempotent(fast_digits):
    out = io.StringIO()
    call_command("bootstrap_demo", stdout=out)
    call_command("bootstrap_demo", stdout=out)
    assert "already exist" in out.getvalue()
    project = Project.objects.get(slug=DEMO_PROJECT)
    assert project.owner.username == DEMO_USERNAME
    assert project.owner.check_password(DEMO_PASSWORD)
    assert not project.owner.is_staff
    assert (project.code_dir / "train.py").is_file()


def test_create_api_token(owner):
    out = io.StringIO()
    call_command("create_api_token", owner.username, stdout=out)
    raw = out.getvalue().strip()
    assert ApiToken.objects.authenticate(raw).user == owner
    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody")


def test_run_experiment_without_wait_queues(project, monkeypatch):
    monkeypatch.setattr("sweeps.tasks.run_trial.apply_async", lambda *a, **k: None)
    out = io.StringIO()
    call_command(
        "run_experiment", "--project", project.slug, "--fast", "--description", "x", stdout=out
    )
    experiment = Experiment.objects.get(project=project)
    assert experiment.kind == Experiment.Kind.FAST_TRAIN and experiment.description == "x"
    assert f"{project.slug}/exp1 queued" in out.getvalue()
    assert str(experiment.output_dir) in out.getvalue()
    with pytest.raises(CommandError, match="--project"):
        call_command("run_experiment", "--project", "missing")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_experiment_wait_reports_failure(celery_worker, owner):
    from tests import factories

    project = factories.make_project(
        owner, template="", files={"full.sh": "exit 2\n", "config.yaml": "a: 1\n"}
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="exp1 failed: exit code 2"):
        call_command(
            "run_experiment", "--project", project.slug, "--wait", "--timeout", "120", stdout=out
        )
    assert "exp1 failed" in out.getvalue()
    assert Experiment.objects.get(project=project).state == RunState.FAILED
