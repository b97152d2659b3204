"""Sweep views: the Sweep form (errors name the line, nothing starts), the sweep page and its
JSON (three users), Stop / Resume / Add trials, Use tuned config, Train with tuned config,
and the Fast Training prediction on the experiment page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from luminide.models import ComputeNode
from sweeps import studies
from sweeps.models import Experiment, RunState, Trial, TrialEpoch
from sweeps.sweep import RESULTS_CSV, TUNED_CONFIG
from tests import factories

pytestmark = pytest.mark.django_db

SWEEP_YAML = """\
parameters:
  lr:    {distribution: log_uniform, min: 0.0001, max: 0.1}
  arch:  {values: [small, wide]}
"""
CONFIG_YAML = "lr: 0.01\narch: small\nepochs: 3\n"
CONFIG_DICT = {"lr": 0.01, "arch": "small", "epochs": 3}
TUNED_YAML = "# Tuned by proj/exp1: trial 2\nlr: 0.003\narch: wide\nepochs: 3\n"


@pytest.fixture(scope="module")
def optuna_storage(tmp_path_factory):
    """One Optuna database for the module (its own file: Django's test DB is locked by the
    test transaction)."""
    return f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.sqlite3'}"


@pytest.fixture
def project(settings, tmp_path, monkeypatch, optuna_storage, owner, collaborator):
    settings.LUMINIDE_DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("LUMINIDE_OPTUNA_STORAGE", optuna_storage)
    return factories.make_project(
        owner,
        "proj",
        template="",
        collaborators=[collaborator],
        files={
            "sweep.yaml": SWEEP_YAML,
            "config.yaml": CONFIG_YAML,
            "full.sh": "python ../code/train.py\n",
            "fast.sh": "python ../code/train.py --epochs 2\n",
        },
    )


@pytest.fixture
def users(owner, collaborator, outsider):
    return {"owner": owner, "collaborator": collaborator, "outsider": outsider}


def make_sweep(project, *, fast=False, state=RunState.COMPLETE, tuned=True, study=None):
    """A finished sweep of 4 trials with per-epoch rows (no Optuna study unless given)."""
    kind = Experiment.Kind.FAST_SWEEP if fast else Experiment.Kind.SWEEP
    now = timezone.now()
    exp = Experiment.objects.create(
        project=project,
        number=1,
        kind=kind,
        state=state,
        config={"lr": 0.01, "arch": "small", "epochs": 3},
        spec={"sweep_yaml": SWEEP_YAML, "n_trials": 4, "parallel": 2, "study": study or ""},
        started_at=now - timedelta(minutes=3),
        best_value=0.3,
    )
    specs = [
        (RunState.COMPLETE, 0.5, {"lr": 0.01, "arch": "small"}),
        (RunState.COMPLETE, 0.3, {"lr": 0.003, "arch": "wide"}),
        (RunState.FAILED, None, {"lr": 0.09, "arch": "wide"}),
        (RunState.RUNNING, None, {"lr": 0.0002, "arch": "small"}),
    ]
    for number, (trial_state, value, params) in enumerate(specs):
        trial = Trial.objects.create(
            experiment=exp,
            number=number,
            state=trial_state,
            value=value,
            params=params,
            started_at=now - timedelta(minutes=2),
            finished_at=None if trial_state == RunState.RUNNING else now,
            failure_reason=(
                "exit code 1: RuntimeError: boom\nRuntimeError: boom"
                if trial_state == "failed"
                else ""
            ),
        )
        n_epochs = 1 if trial_state == RunState.FAILED else 3
        for e in range(n_epochs):
            loss = (value or 0.8) + 0.1 * (2 - e)
            score = float("inf") if trial_state == RunState.FAILED else loss - 0.05
            TrialEpoch.objects.create(trial=trial, epoch=e, val_loss=loss, score=score)
        Trial.objects.filter(pk=trial.pk).update(epochs_done=n_epochs)
    exp.output_dir.mkdir(parents=True, exist_ok=True)
    if tuned:
        (exp.output_dir / TUNED_CONFIG).write_text(TUNED_YAML)
        (exp.output_dir / RESULTS_CSV).write_text("number,state\n0,complete\n")
    for number in range(4):
        (exp.output_dir / f"trial{number}").mkdir(exist_ok=True)
        (exp.output_dir / f"trial{number}" / "log.txt").write_text(f"trial {number}\n")
    return exp


def url(name, exp, *args):
    return reverse(name, args=[exp.project.slug, exp.number, *args])


def strict_json(response) -> dict:
    """Parse like a browser's JSON.parse: NaN/Infinity tokens are errors."""

    def refuse(token):
        raise AssertionError(f"non-JSON constant {token} in the payload")

    return json.loads(response.content, parse_constant=refuse)


# ---------------------------------------------------------------- access


@pytest.mark.parametrize(("who", "ok"), [("owner", 1), ("collaborator", 1), ("outsider", 0)])
def test_read_access(client, project, users, who, ok):
    exp = make_sweep(project)
    client.force_login(users[who])
    for target in (
        url("experiment_detail", exp),
        url("sweep_data", exp),
        url("sweep_importance", exp),
        url("experiment_file", exp, TUNED_CONFIG),
        url("experiment_file", exp, RESULTS_CSV),
        url("experiment_file", exp, "trial1/log.txt"),
    ):
        assert client.get(target).status_code == (200 if ok else 404), target


@pytest.mark.parametrize(("who", "ok"), [("owner", 1), ("collaborator", 1), ("outsider", 0)])
def test_write_access(client, project, users, who, ok):
    exp = make_sweep(project, state=RunState.RUNNING)
    before = (project.code_dir / "config.yaml").read_text()
    client.force_login(users[who])
    expected = 302 if ok else 404
    assert client.post(url("sweep_use_tuned", exp)).status_code == expected
    assert client.post(url("sweep_train_tuned", exp)).status_code == expected
    assert client.post(url("sweep_stop", exp)).status_code == expected
    start = client.post(reverse("sweep_start", args=[project.slug]), {"n_trials": "2"})
    assert start.status_code == expected
    if not ok:
        exp.refresh_from_db()
        assert exp.state == RunState.RUNNING
        assert (project.code_dir / "config.yaml").read_text() == before
        assert project.experiments.count() == 1


def test_anonymous_is_sent_to_login(client, project):
    exp = make_sweep(project)
    response = client.get(url("sweep_data", exp))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_sweep_endpoints_404_for_single_runs(client, project, owner):
    single = factories.make_experiment(project, number=5, kind=Experiment.Kind.TRAIN)
    client.force_login(owner)
    assert client.get(url("sweep_data", single)).status_code == 404
    assert client.post(url("sweep_stop", single)).status_code == 404


# ---------------------------------------------------------------- page and data


def test_sweep_page_renders_for_sweeps_and_trial_pages_stay(client, project, owner):
    exp = make_sweep(project, fast=True)
    client.force_login(owner)
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert 'id="sweep"' in page and "Early Ranking Metric" in page
    assert "Use tuned config" in page and "Train with tuned config" in page
    assert TUNED_CONFIG in page and RESULTS_CSV in page
    assert "lr: 0.003" in page  # the tuned config is shown
    # One trial of the sweep keeps the experiment page (live chart and log of that trial).
    trial_page = client.get(url("experiment_detail", exp) + "?trial=1").content.decode()
    assert 'id="experiment"' in trial_page and 'id="sweep"' not in trial_page
    # ... and leads back to the sweep: breadcrumb and button.
    sweep_link = f'href="{url("experiment_detail", exp)}"'
    assert f'{sweep_link} id="crumb-sweep">exp1</a>' in trial_page
    assert "<span>trial 1</span>" in trial_page
    assert f'{sweep_link} id="sweep-overview">← All trials</a>' in trial_page
    assert "crumb-sweep" not in page and "sweep-overview" not in page


def test_a_running_sweep_says_when_fewer_workers_than_parallel_are_online(client, project, owner):
    exp = make_sweep(project, state=RunState.RUNNING)  # parallel 2
    client.force_login(owner)
    ComputeNode.objects.create(hostname="w1", state=ComputeNode.State.BUSY)
    ComputeNode.objects.create(hostname="w0", state=ComputeNode.State.OFFLINE)
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert "1 worker online" in page
    ComputeNode.objects.create(hostname="w2", state=ComputeNode.State.IDLE)
    assert "workers-note" not in client.get(url("experiment_detail", exp)).content.decode()


def test_a_stopped_sweep_reads_stopped_not_cancelled(client, project, owner):
    exp = make_sweep(project, state=RunState.CANCELLED)
    client.force_login(owner)
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert '<span class="badge badge-cancelled">Stopped</span>' in page and "Resume" in page
    listing = client.get(reverse("experiment_list", args=[project.slug])).content.decode()
    assert '<span class="badge badge-cancelled">Stopped</span>' in listing


def test_data_payload(client, project, owner):
    exp = make_sweep(project, fast=True)
    client.force_login(owner)
    data = strict_json(client.get(url("sweep_data", exp)))
    assert data["experiment"]["objective"] == "Early Ranking score"
    assert data["experiment"]["has_tuned"] is True
    rows = {r["number"]: r for r in data["trials"]}
    assert rows[1]["rank"] == 1 and rows[0]["rank"] == 2
    assert rows[2]["greyed"] and rows[2]["reason"] == "exit code 1: RuntimeError: boom"
    assert rows[0]["reason"] == ""
    assert rows[3]["state"] == "running" and rows[3]["rank"] is None
    assert data["counts"] == {"complete": 2, "failed": 1, "running": 1}
    assert data["epochs_total"] == 10
    assert data["history"]["best"] == [0.5, 0.3]
    assert [p["name"] for p in data["params"]] == ["arch", "lr"]
    assert data["parcoords"]["numbers"] == [0, 1]
    assert set(data["curves"]) == {"0", "1", "2", "3"}
    assert data["curves"]["2"]["score"] == ["inf"]  # diverged, encoded explicitly
    assert data["curves"]["1"]["n"] == 3

    # Only the curves asked for (the page's incremental re-sync); none with an empty list.
    some = strict_json(client.get(url("sweep_data", exp) + "?curves=3,99"))
    assert set(some["curves"]) == {"3"} and len(some["trials"]) == 4
    none = strict_json(client.get(url("sweep_data", exp) + "?curves="))
    assert none["curves"] == {}
    # A trial run again after a lost worker says why (read from its metadata).
    Trial.objects.filter(experiment=exp, number=0).update(
        metadata={"retried_after": "lost its worker (w@h died)"}
    )
    again_data = strict_json(client.get(url("sweep_data", exp)))
    again = {r["number"]: r for r in again_data["trials"]}[0]
    assert again["reason"] == "retried: the first attempt lost its worker (w@h died)"


def test_a_sweep_stored_with_a_w_and_b_section_still_draws(client, project, owner):
    exp = make_sweep(project)
    Experiment.objects.filter(pk=exp.pk).update(
        spec={**exp.spec, "sweep_yaml": "method: bayes\n" + SWEEP_YAML}
    )
    client.force_login(owner)
    data = strict_json(client.get(url("sweep_data", exp)))
    assert [p["name"] for p in data["params"]] == ["arch", "lr"]


def test_data_queries_do_not_grow_with_trials(
    client, project, owner, django_assert_max_num_queries
):
    exp = make_sweep(project)
    for number in range(4, 40):
        trial = Trial.objects.create(experiment=exp, number=number, state="complete", value=1.0)
        TrialEpoch.objects.create(trial=trial, epoch=0, val_loss=1.0)
    client.force_login(owner)
    with django_assert_max_num_queries(10):
        assert client.get(url("sweep_data", exp)).status_code == 200


def test_importance_needs_two_completed_trials_and_is_cached(client, project, owner):
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    name = "views-importance-study"
    studies.delete_study(name)
    study = studies.create_study(name, seed=0)
    dists = {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "arch": CategoricalDistribution(["small", "wide"]),
    }
    exp = make_sweep(project, study=name)
    client.force_login(owner)
    # Fewer than 2 completed trials: not computed.
    Trial.objects.filter(experiment=exp, state="complete").update(value=None)
    assert strict_json(client.get(url("sweep_importance", exp)))["status"] == "too_few"
    Trial.objects.filter(experiment=exp, number=0).update(value=0.5)
    Trial.objects.filter(experiment=exp, number=1).update(value=0.3)
    for i in range(6):
        trial = studies.ask(study, dists)
        studies.tell(study, trial.number, 0.1 * i + trial.params["lr"])
    data = strict_json(client.get(url("sweep_importance", exp)))
    assert data["status"] == "ok" and data["n_complete"] == 2
    assert {d["name"] for d in data["importance"]} == {"lr", "arch"}
    assert sum(d["value"] for d in data["importance"]) == pytest.approx(1.0)
    # Cached: the study is not read again for the same completed trials.
    studies.delete_study(name)
    assert strict_json(client.get(url("sweep_importance", exp))) == data


# ---------------------------------------------------------------- the Sweep form


def test_invalid_sweep_yaml_is_refused_with_its_line_and_nothing_starts(client, project, owner):
    (project.code_dir / "sweep.yaml").write_text(
        "parameters:\n  lr: {distribution: log_uniform, min: 0.1, max: 0.01}\n"
    )
    client.force_login(owner)
    start = reverse("sweep_start", args=[project.slug])
    response = client.post(start, {"n_trials": "3", "fast": "on"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    data = response.json()
    assert data["file"] == "sweep.yaml" and data["line"] == 2
    assert "sweep.yaml line 2" in data["error"] and "'lr'" in data["error"]
    assert not Experiment.objects.exists()
    assert not any(project.output_dir.iterdir())

    # Without JavaScript: back to the IDE's Sweep tab with the same message.
    response = client.post(start, {"n_trials": "3"}, follow=True)
    assert response.redirect_chain[-1][0].endswith("?tab=sweep")
    assert "sweep.yaml line 2" in response.content.decode()
    assert not Experiment.objects.exists()


def test_a_misspelled_parameter_is_refused_before_any_trial(client, project, owner):
    """A name config.yaml lacks would be sampled, ranked and written into the tuned config
    while train.py ran every trial with its default."""
    (project.code_dir / "sweep.yaml").write_text(
        SWEEP_YAML + "  lrr: {distribution: uniform, min: 0.0, max: 0.1}\n"
    )
    client.force_login(owner)
    start = reverse("sweep_start", args=[project.slug])
    response = client.post(start, {"n_trials": "3", "fast": "on"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    data = response.json()
    assert data["file"] == "sweep.yaml" and data["line"] == 4
    assert "parameter 'lrr' is not in config.yaml; did you mean 'lr'?" in data["error"]
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"n_trials": "0"}, "trials: must be between"),
        ({"n_trials": "abc"}, "trials: must be a whole number"),
        ({"n_trials": "3", "parallel": "500"}, "parallel: must be between"),
    ],
)
def test_bad_counts_are_refused(client, project, owner, form, message):
    client.force_login(owner)
    response = client.post(
        reverse("sweep_start", args=[project.slug]), form, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400 and message in response.json()["error"]
    assert not Experiment.objects.exists()


def test_start_fast_sweep(client, project, owner):
    client.force_login(owner)
    response = client.post(
        reverse("sweep_start", args=[project.slug]),
        {"n_trials": "3", "parallel": "2", "fast": "on", "description": "quick"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    exp = Experiment.objects.get()
    assert response.json()["url"] == url("experiment_detail", exp)
    assert exp.kind == Experiment.Kind.FAST_SWEEP and exp.description == "quick"
    assert exp.spec["n_trials"] == 3 and exp.trials.count() == 2


def test_ide_has_the_sweep_tab(client, project, owner):
    client.force_login(owner)
    page = client.get(reverse("project_ide", args=[project.slug])).content.decode()
    assert 'data-tab="sweep"' in page and 'id="sweep-form"' in page
    assert 'name="fast" id="id_sweep_fast"' in page


# ---------------------------------------------------------------- buttons


def test_stop_then_resume_then_add_trials(client, project, owner):
    from sweeps.sweep import do_start_sweep

    exp = do_start_sweep(project, owner, n_trials=3, parallel=1, seed=0)
    client.force_login(owner)
    assert client.post(url("sweep_stop", exp)).status_code == 302
    exp.refresh_from_db()
    assert exp.state == RunState.CANCELLED
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert 'id="resume-button"' in page and 'id="stop-button"' not in page

    response = client.post(url("sweep_resume", exp), follow=True)
    assert f"{exp.name} resumed." in response.content.decode()
    exp.refresh_from_db()
    assert exp.state == RunState.RUNNING
    assert exp.trials.filter(state=RunState.QUEUED).count() == 1

    # Trials added to a running sweep: it was not "resumed".
    response = client.post(url("sweep_resume", exp), {"add_trials": "4"}, follow=True)
    assert f"{exp.name}: 4 more trials added." in response.content.decode()
    exp.refresh_from_db()
    assert exp.spec["n_trials"] == 7
    response = client.post(url("sweep_resume", exp), {"add_trials": "0"}, follow=True)
    assert "add trials: must be at least 1" in response.content.decode()
    exp.refresh_from_db()
    assert exp.spec["n_trials"] == 7


def test_use_tuned_config_keeps_the_previous_one(client, project, owner):
    exp = make_sweep(project)
    client.force_login(owner)
    response = client.post(url("sweep_use_tuned", exp))
    assert response.status_code == 302
    assert response["Location"] == reverse("project_ide", args=[project.slug]) + "#config.yaml"
    assert (project.code_dir / "config.yaml").read_text() == TUNED_YAML
    backups = list(project.code_dir.glob("config.yaml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == CONFIG_YAML
    # Applying it again changes nothing and keeps no second copy.
    client.post(url("sweep_use_tuned", exp))
    assert len(list(project.code_dir.glob("config.yaml.bak-*"))) == 1


def test_use_tuned_config_without_one(client, project, owner):
    exp = make_sweep(project, tuned=False)
    client.force_login(owner)
    response = client.post(url("sweep_use_tuned", exp), follow=True)
    assert "has no completed trial yet" in response.content.decode()
    assert (project.code_dir / "config.yaml").read_text() == CONFIG_YAML


def test_invalid_tuned_config_is_not_copied(client, project, owner):
    exp = make_sweep(project)
    (exp.output_dir / TUNED_CONFIG).write_text("lr: [0.1\n")
    client.force_login(owner)
    response = client.post(url("sweep_train_tuned", exp), follow=True)
    assert "config-tuned.yaml line 2" in response.content.decode()  # the file that is wrong
    assert (project.code_dir / "config.yaml").read_text() == CONFIG_YAML
    assert project.experiments.count() == 1


def test_train_with_tuned_config_without_full_sh_changes_nothing(client, project, owner):
    exp = make_sweep(project)
    (project.code_dir / "full.sh").unlink()
    client.force_login(owner)
    response = client.post(url("sweep_train_tuned", exp), follow=True)
    assert "full.sh: not found in the project&#x27;s code/" in response.content.decode()
    assert (project.code_dir / "config.yaml").read_text() == CONFIG_YAML  # not applied
    assert project.experiments.count() == 1


def test_train_with_tuned_config(client, project, owner):
    exp = make_sweep(project)
    client.force_login(owner)
    response = client.post(url("sweep_train_tuned", exp))
    training = project.experiments.exclude(pk=exp.pk).get()
    assert training.kind == Experiment.Kind.TRAIN
    assert response["Location"] == url("experiment_detail", training)
    assert training.config == {"lr": 0.003, "arch": "wide", "epochs": 3}
    assert training.trials.get().state == RunState.QUEUED
    assert (project.code_dir / "config.yaml").read_text() == TUNED_YAML


def tuned_card(client, exp) -> tuple[str, str]:
    """The sweep page's tuned-config card: its opening tag's attributes, and its content."""
    page = client.get(url("experiment_detail", exp)).content.decode()
    attributes, content = page.split('id="tuned-card"', 1)[1].split(">", 1)
    return attributes, content.split("</section>", 1)[0]


def test_the_tuned_card_holds_the_tuned_configs_training_against_the_best_other(
    client, project, owner
):
    exp = make_sweep(project, fast=True)
    client.force_login(owner)
    tuned = {"lr": 0.003, "arch": "wide", "epochs": 3}
    default = factories.make_experiment(
        project, number=2, state=RunState.COMPLETE, config=CONFIG_DICT, best_value=0.2
    )
    factories.make_experiment(  # worse, and a failed one: neither is the one to beat
        project, number=3, state=RunState.COMPLETE, config={"lr": 0.1}, best_value=0.9
    )
    factories.make_experiment(project, number=4, state=RunState.FAILED, config={"lr": 0.5})
    attributes, card = tuned_card(client, exp)
    assert "Not trained fully yet." in card and "train it fully to see" in card
    other = f'<a href="{url("experiment_detail", default)}">exp2</a> 0.2.'
    assert f"Best full training of another config: {other}" in card
    assert "data-poll" not in attributes

    # Train with tuned config: running, the card polls until it ends.
    running = factories.make_experiment(
        project, number=5, state=RunState.RUNNING, config=tuned, best_value=0.6
    )
    attributes, card = tuned_card(client, exp)
    assert "data-poll" in attributes
    assert '>exp5</a> <span class="badge badge-running">Running</span>' in card
    assert "lower than the tuned config" not in card  # not before it ends
    assert "train it fully to see" not in card  # it is being trained

    # It ended worse than the other config: the card says so and links the comparison.
    Experiment.objects.filter(pk=running.pk).update(state=RunState.COMPLETE, best_value=0.25)
    attributes, card = tuned_card(client, exp)
    assert ">exp5</a> <strong>0.25</strong>" in card and "data-poll" not in attributes
    assert "lower than the tuned config's" in card
    assert f"{reverse('experiment_compare', args=[project.slug])}?n=5,2" in card

    # A better tuned training: no warning. A training of the same config from before the
    # sweep is not its outcome.
    Experiment.objects.filter(pk=running.pk).update(best_value=0.15)
    factories.make_experiment(
        project, number=0, state=RunState.COMPLETE, config=tuned, best_value=0.01
    )
    _attributes, card = tuned_card(client, exp)
    assert ">exp5</a> <strong>0.15</strong>" in card and ">exp0<" not in card
    assert "lower than the tuned config" not in card

    # What it reached is a completed training's: not a second one's running best, nor a
    # failed (e.g. diverged) one's best from before it failed.
    Experiment.objects.filter(pk=running.pk).update(best_value=0.5)
    factories.make_experiment(
        project, number=6, state=RunState.RUNNING, config=tuned, best_value=0.1
    )
    factories.make_experiment(
        project, number=7, state=RunState.FAILED, config=tuned, best_value=0.05
    )
    _attributes, card = tuned_card(client, exp)
    assert "lower than the tuned config's" in card and "?n=5,2" in card


# ---------------------------------------------------------------- Fast Training


def test_fast_training_page_shows_the_prediction(client, project, owner):
    exp = factories.make_experiment(
        project, number=9, kind=Experiment.Kind.FAST_TRAIN, state=RunState.COMPLETE
    )
    Trial.objects.filter(experiment=exp).update(score=0.1234567)
    client.force_login(owner)
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert "Predicted final val loss" in page
    assert 'class="stat predicted"' in page and "0.1235" in page
    full = factories.make_experiment(project, number=10, kind=Experiment.Kind.TRAIN)
    assert (
        "Predicted final val loss"
        not in client.get(url("experiment_detail", full)).content.decode()
    )


def test_a_fast_sweeps_tuned_card_predicts_its_final_val_loss(client, project, owner):
    exp = make_sweep(project, fast=True)
    (exp.output_dir / TUNED_CONFIG).write_text("# Tuned by proj/exp1: trial 1, score 0.35\n")
    Trial.objects.filter(experiment=exp, number=1).update(score=0.35)
    client.force_login(owner)
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert "train it fully to see" in page  # nothing to calibrate on yet
    full = factories.make_experiment(
        project, number=5, kind=Experiment.Kind.TRAIN, state=RunState.COMPLETE
    ).trials.get()
    Trial.objects.filter(pk=full.pk).update(epochs_done=30, best_val_loss=0.035)
    TrialEpoch.objects.create(trial=full, epoch=2, val_loss=0.4, score=0.35)
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert "Predicted final val loss of a full training: <strong>≈ 0.035</strong>" in page
    assert "from the one full run of this project scored after 3 epochs" in page
    # Once the tuned config itself is trained, its result replaces the prediction (which
    # that very run would calibrate).
    (exp.output_dir / TUNED_CONFIG).write_text(TUNED_YAML)
    Experiment.objects.filter(pk=full.experiment_id).update(
        config={"lr": 0.003, "arch": "wide", "epochs": 3}, best_value=0.035
    )
    page = client.get(url("experiment_detail", exp)).content.decode()
    assert 'id="tuned-prediction"' not in page and ">exp5</a> <strong>0.035</strong>" in page
    # A full sweep's pick has its own val loss: no prediction there.
    Experiment.objects.filter(pk=exp.pk).update(kind=Experiment.Kind.SWEEP)
    assert 'id="tuned-prediction"' not in client.get(url("experiment_detail", exp)).content.decode()


def test_importance_without_a_stored_study_uses_the_trial_rows(client, project, owner):
    exp = make_sweep(project, study="no-such-study")
    Trial.objects.create(
        experiment=exp, number=9, state="complete", value=0.9, params={"lr": 0.05, "arch": "wide"}
    )
    client.force_login(owner)
    data = strict_json(client.get(url("sweep_importance", exp)))
    assert data["status"] == "ok" and data["n_complete"] == 3
    assert {d["name"] for d in data["importance"]} == {"lr", "arch"}
