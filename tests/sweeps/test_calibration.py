"""A Fast Training's predicted final val loss, calibrated on its project's full runs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sweeps.calibration import predict_final
from sweeps.models import Experiment, RunState, Trial, TrialEpoch
from tests import factories

pytestmark = pytest.mark.django_db

KIND = Experiment.Kind


@pytest.fixture
def project(settings, tmp_path, owner):
    settings.LUMINIDE_DATA_DIR = tmp_path / "data"
    return factories.make_project(owner, "proj", template="")


def run(
    project, kind, *, score_at_3, best, epochs=30, state=RunState.COMPLETE, first_epoch=0
) -> Trial:
    """A run whose Early Ranking score after 3 epochs was ``score_at_3``."""
    trial = factories.make_experiment(project, kind=kind, state=state).trials.get()
    trial.epochs_done, trial.best_val_loss = epochs, best
    if kind == KIND.FAST_TRAIN:
        trial.score = score_at_3
    trial.save()
    for epoch in range(first_epoch, first_epoch + 3):
        TrialEpoch.objects.create(trial=trial, epoch=epoch, val_loss=0.5, score=score_at_3)
    return trial


def test_no_full_run_no_calibration(project):
    fast = run(project, KIND.FAST_TRAIN, score_at_3=0.34, best=0.35, epochs=3)
    run(project, KIND.FAST_TRAIN, score_at_3=0.30, best=0.31, epochs=3)  # fast: not full
    assert predict_final(fast) is None


def test_the_closest_scoring_full_runs_scale_the_score(project, owner):
    # (score after 3 epochs, best val loss at the end): the last two score far from 0.34.
    for score, best in [(0.30, 0.03), (0.32, 0.04), (0.34, 0.05), (0.36, 0.06), (0.40, 0.08)]:
        run(project, KIND.TRAIN, score_at_3=score, best=best)
    run(project, KIND.SWEEP, score_at_3=1.0, best=0.9)
    run(project, KIND.SWEEP, score_at_3=2.0, best=0.1)
    # Not evidence: failed, too short, another project, fast.
    run(project, KIND.TRAIN, score_at_3=0.34, best=9.0, state=RunState.FAILED)
    run(project, KIND.TRAIN, score_at_3=0.34, best=9.0, epochs=3)
    run(factories.make_project(owner, "other", template=""), KIND.TRAIN, score_at_3=0.34, best=9.0)
    run(project, KIND.FAST_SWEEP, score_at_3=0.34, best=9.0, epochs=3)
    fast = run(project, KIND.FAST_TRAIN, score_at_3=0.34, best=0.35, epochs=3)

    p = predict_final(fast)
    ratios = sorted([0.03 / 0.30, 0.04 / 0.32, 0.05 / 0.34, 0.06 / 0.36, 0.08 / 0.40])
    assert (p.runs, p.epochs) == (5, 3)
    assert p.estimate == pytest.approx(0.34 * ratios[2])
    assert (p.low, p.high) == (pytest.approx(0.34 * ratios[0]), pytest.approx(0.34 * ratios[-1]))


def test_a_history_numbering_epochs_from_1_compares_the_same_epochs(project):
    full = run(project, KIND.TRAIN, score_at_3=0.3, best=0.03, first_epoch=1)
    for epoch, score in ((1, 0.9), (2, 0.6)):  # its earlier scores were higher
        TrialEpoch.objects.filter(trial=full, epoch=epoch).update(score=score)
    fast = run(project, KIND.FAST_TRAIN, score_at_3=0.3, best=0.3, epochs=3, first_epoch=1)
    assert predict_final(fast).estimate == pytest.approx(0.03)  # 0.3 x (0.03 / 0.3)


def test_a_diverged_or_unscored_run_is_not_evidence(project):
    run(project, KIND.TRAIN, score_at_3=float("inf"), best=0.1)
    run(project, KIND.TRAIN, score_at_3=0.3, best=float("nan"))
    fast = run(project, KIND.FAST_TRAIN, score_at_3=0.34, best=0.35, epochs=3)
    assert predict_final(fast) is None
    fast.score = float("inf")  # a diverged fast run has nothing to scale
    run(project, KIND.TRAIN, score_at_3=0.3, best=0.1)
    assert predict_final(fast) is None


def test_the_fast_training_page_shows_the_calibrated_prediction(client, project, owner):
    fast = run(project, KIND.FAST_TRAIN, score_at_3=0.34, best=0.35, epochs=3)
    url = reverse("experiment_detail", args=[project.slug, fast.experiment.number])
    client.force_login(owner)
    page = client.get(url).content.decode()
    assert "Predicted final val loss (upper estimate)" in page
    assert "uncalibrated until this project has a completed full training" in page
    run(project, KIND.TRAIN, score_at_3=0.34, best=0.034)
    page = client.get(url).content.decode()
    assert 'id="stat-predicted">≈ 0.034<' in page
    assert "from the one full run of this project scored after 3 epochs" in page
    assert 'Early Ranking score <span id="stat-score">0.34<' in page
    run(project, KIND.TRAIN, score_at_3=0.34, best=0.068)
    page = client.get(url).content.decode()
    assert (
        "0.034 to 0.068, from the 2 full runs of this project that scored closest after 3" in page
    )
