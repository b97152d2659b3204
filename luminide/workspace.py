"""Workspace operations on project folders: creating projects from code templates.

A code template is a folder under ``luminide/code_templates/<name>/`` whose files become the
project's ``code/``. A template may also ship a data set: :data:`TEMPLATE_INPUTS` maps its
name to a function that writes the project's ``input/``.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

from django.db import transaction

from luminide.models import Project

TEMPLATES_DIR = Path(__file__).resolve().parent / "code_templates"


def list_templates() -> list[str]:
    """Names of the shipped code templates, sorted."""
    return sorted(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir())


def write_digits_images(input_dir: Path) -> int:
    """Write scikit-learn's digits (1,797 8x8 images) as PNGs plus ``labels.csv``.

    The layout real image data sets use: ``images/<id>.png`` and a CSV of
    ``filename,label``. Returns the number of images written.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images_dir = input_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    rows = []
    for i, (img, label) in enumerate(zip(pixels, digits.target, strict=True)):
        name = f"images/{i:04d}.png"
        Image.fromarray(img, mode="L").save(input_dir / name)
        rows.append((name, int(label)))
    with open(input_dir / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return len(rows)


def write_tabular_data(input_dir: Path) -> int:
    """Write a generated 4-class tabular data set (5,000 rows, 20 features) as ``train.csv``.

    Generated with a fixed seed (scikit-learn's ``make_classification``): informative,
    redundant and noise features plus 3% flipped labels, so model size and regularisation
    matter. Returns the number of rows written.
    """
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=5000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=0.8,
        flip_y=0.03,
        random_state=0,
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).round(5)
    frame["label"] = y
    frame.to_csv(input_dir / "train.csv", index=False)
    return len(frame)


TEMPLATE_INPUTS: dict[str, Callable[[Path], int]] = {
    "image-classification": write_digits_images,
    "tabular-classification": write_tabular_data,
}


def create_project(owner, slug: str, name: str, template: str) -> Project:
    """Create a project row and its folders (``code/`` from the template, ``input/``, ``output/``).

    Args:
        owner: The user who owns the project.
        slug: Unique folder-safe name (``projects/<slug>/``).
        name: Display name.
        template: A name from :func:`list_templates`, or ``""`` for an empty project.

    Returns:
        The new project.

    Raises:
        ValueError: Unknown template, or a project with this slug (or its folder) exists.
    """
    if template and template not in list_templates():
        raise ValueError(f"template: unknown code template {template!r}")
    if Project.objects.filter(slug=slug).exists():
        raise ValueError(f"slug: a project named {slug!r} already exists")
    with transaction.atomic():
        project = Project.objects.create(slug=slug, name=name, owner=owner, template=template)
        root = project.root
        if root.exists() and any(root.iterdir()):
            raise ValueError(f"slug: the folder {root} already exists and is not empty")
        try:
            populate_project_dirs(project)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    return project


def populate_project_dirs(project: Project) -> None:
    """Create the folders of ``project`` and fill ``code/`` and ``input/`` from its template."""
    project.output_dir.mkdir(parents=True, exist_ok=True)
    project.input_dir.mkdir(parents=True, exist_ok=True)
    if project.template:
        shutil.copytree(
            TEMPLATES_DIR / project.template,
            project.code_dir,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
        writer = TEMPLATE_INPUTS.get(project.template)
        if writer is not None and not any(project.input_dir.iterdir()):
            writer(project.input_dir)
    else:
        project.code_dir.mkdir(parents=True, exist_ok=True)
