"""Contract of every shipped code template: valid files, a real short training, history.csv
that Luminide reads, and hyperparameters that change the outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from luminide.workspace import list_templates
from ranking import read_history
from sweeps.search_space import parse_config_yaml, parse_sweep_yaml
from tests import factories

TEMPLATES = list_templates()


def test_both_templates_ship():
    assert {"image-classification", "tabular-classification"} <= set(TEMPLATES)


def test_template_summaries_are_plain_text():
    from luminide.views import code_templates

    summaries = {t["name"]: t["summary"] for t in code_templates()}
    # The first line of train.py's docstring, without its reST ``inline code`` marks.
    assert summaries["tabular-classification"] == (
        "Train an MLP on a tabular data set (../input/train.csv; plain PyTorch)."
    )


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_files_are_valid(template):
    code = Path("luminide/code_templates") / template
    config = parse_config_yaml((code / "config.yaml").read_text())
    space = parse_sweep_yaml((code / "sweep.yaml").read_text())
    assert set(space.distributions) <= set(config), "sweep.yaml searches keys config.yaml lacks"
    for script in ("full.sh", "fast.sh"):
        assert os.access(code / script, os.X_OK), f"{script} is not executable"
        assert "../code/train.py" in (code / script).read_text()


def _train(run_dir: Path, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
    run_dir.mkdir(parents=True)
    if config is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "../code/fast.sh", *args],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_trains_and_writes_a_readable_history(template, owner):
    project = factories.make_project(owner, template=template)
    # A folder beside code/ and input/, so ../code and ../input resolve to them.
    good = _train(project.root / "good", "--epochs", "2", "--subset", "400")
    assert good.returncode == 0, good.stderr[-2000:]
    # Every run's log shows stderr: a warning on each run would bury a real error.
    assert "Warning" not in good.stderr, good.stderr[-2000:]
    history = read_history(project.root / "good" / "history.csv")
    epochs = history.dropna(subset=["epoch_val_loss"])
    assert list(epochs["epoch"]) == [0, 1]
    assert history["train_loss"].notna().sum() >= 8  # minibatch rows, 2 epochs
    assert history["val_loss"].notna().any(), "no validation-minibatch rows"
    assert (project.root / "good" / "model.pth").is_file()

    # A run's own config.yaml (what a sweep trial gets) overrides ../code/config.yaml.
    defaults = parse_config_yaml((project.code_dir / "config.yaml").read_text())
    bad = _train(
        project.root / "bad",
        "--epochs",
        "2",
        "--subset",
        "400",
        config={**defaults, "lr": 1e-6 if defaults["optimizer"] != "sgd" else 1e-5},
    )
    assert bad.returncode == 0, bad.stderr[-2000:]
    bad_history = read_history(project.root / "bad" / "history.csv")
    best_good = np.nanmin(epochs["epoch_val_loss"])
    best_bad = np.nanmin(bad_history["epoch_val_loss"])
    assert best_good < best_bad, "a tiny learning rate should train worse"


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("template", TEMPLATES)
def test_fast_run_is_the_start_of_the_full_run(template, owner):
    """Early Ranking predicts a full run from its first epochs, so fast.sh must train exactly
    those epochs (same schedule, same seed), not a shorter run of its own."""
    project = factories.make_project(owner, template=template)
    config = parse_config_yaml((project.code_dir / "config.yaml").read_text())
    if "schedule" in config:
        config["schedule"] = "cosine"  # a schedule that depends on the full length
    run_dir = project.root / "full"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    full = subprocess.run(
        ["bash", "../code/full.sh", "--subset", "300"],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 0, full.stderr[-2000:]
    fast = _train(project.root / "fast", "--subset", "300", config=config)
    assert fast.returncode == 0, fast.stderr[-2000:]

    def epoch_losses(folder):
        df = read_history(project.root / folder / "history.csv")
        return df.dropna(subset=["epoch_val_loss"])["epoch_val_loss"].to_numpy()

    fast_losses, full_losses = epoch_losses("fast"), epoch_losses("full")
    assert 2 <= len(fast_losses) < len(full_losses) / 4
    np.testing.assert_allclose(fast_losses, full_losses[: len(fast_losses)], rtol=1e-5)
