"""Test data helpers: users, projects (with template code and data), experiments, histories;
and :func:`wait_for`, the one polling loop of the integration tests."""

from __future__ import annotations

import shutil
import time
import uuid
from functools import cache
from pathlib import Path

from django.contrib.auth import get_user_model

from luminide.models import Project
from luminide.workspace import TEMPLATE_INPUTS, TEMPLATES_DIR
from sweeps.models import Experiment, RunState, Trial

LAYOUT3_HEADER = "index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\n"


def make_user(username: str | None = None, password: str | None = None, **fields):
    username = username or f"user-{uuid.uuid4().hex[:6]}"
    return get_user_model().objects.create_user(
        username, password=password or f"pw-{username}", **fields
    )


@cache
def template_input_cache(template: str) -> Path | None:
    """The template's data set written once per test session (writing PNGs is slow)."""
    writer = TEMPLATE_INPUTS.get(template)
    if writer is None:
        return None
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=f"lum-input-{template}-"))
    writer(root)
    return root


def make_project(
    owner,
    slug: str | None = None,
    *,
    template: str = "image-classification",
    collaborators=(),
    files: dict[str, str] | None = None,
) -> Project:
    """A project with its folders; code from ``template`` (``""``: empty); ``input`` is a
    symlink to the template's data written once per session (do not modify it);
    ``files`` (path -> text) are written into ``code/`` last."""
    slug = slug or f"p-{uuid.uuid4().hex[:8]}"
    project = Project.objects.create(slug=slug, name=slug, owner=owner, template=template)
    if collaborators:
        project.collaborators.add(*collaborators)
    project.output_dir.mkdir(parents=True, exist_ok=True)
    project.code_dir.mkdir(parents=True, exist_ok=True)
    if template:
        shutil.copytree(TEMPLATES_DIR / template, project.code_dir, dirs_exist_ok=True)
        cached = template_input_cache(template)
        if cached is not None:
            project.input_dir.symlink_to(cached, target_is_directory=True)
    project.input_dir.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {}).items():
        path = project.code_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project


def make_experiment(
    project: Project,
    *,
    number: int | None = None,
    kind: str = Experiment.Kind.TRAIN,
    state: str = RunState.QUEUED,
    trials: int = 1,
    **fields,
) -> Experiment:
    if number is None:
        number = (
            project.experiments.order_by("-number").values_list("number", flat=True).first() or 0
        ) + 1
    experiment = Experiment.objects.create(
        project=project, number=number, kind=kind, state=state, **fields
    )
    for k in range(trials):
        Trial.objects.create(experiment=experiment, number=k, state=state)
    return experiment


def layout3_rows(
    epochs: int, steps: int, *, val_every: int = 5, start_index: int = 0, batch: int = 32
) -> str:
    """Layout-3 history lines (no header): ``steps`` train rows per epoch, a validation
    minibatch every ``val_every`` steps, one epoch-end row with ``epoch_val_loss``."""
    lines = []
    index = start_index
    for e in range(epochs):
        for s in range(1, steps + 1):
            train = 2.0 / (1 + e + s / steps)
            val = f"{train * 1.1:.6g}" if s % val_every == 0 else ""
            lines.append(f"{index},{e},{s * batch},{train:.6g},{val},")
            index += 1
        lines.append(f"{index},{e},{steps * batch},,,{2.2 / (2 + e):.6g}")
        index += 1
    return "\n".join(lines) + "\n"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
