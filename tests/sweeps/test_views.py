"""Experiment views: access (owner, collaborator, outsider), Train/Cancel, tracking list,
detail, history/log re-sync endpoints, downloads, description, delete, compare, diff, restore.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from django.urls import reverse

from luminide.models import ComputeNode
from sweeps.history import HistoryArrays, encode_chunk
from sweeps.models import Experiment, HistoryChunk, RunState, Trial, TrialEpoch
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.LUMINIDE_DATA_DIR = tmp_path / "data"
    settings.LUMINIDE_DATA_DIR.mkdir()
    return settings.LUMINIDE_DATA_DIR


@pytest.fixture
def users(owner, collaborator, outsider):
    return {"owner": owner, "collaborator": collaborator, "outsider": outsider}


@pytest.fixture
def project(data_dir, owner, collaborator):
    project = factories.make_project(owner, "proj", template="", collaborators=[collaborator])
    (project.code_dir / "config.yaml").write_text("lr: 0.05\n")
    (project.code_dir / "train.py").write_text("print('current')\n")
    for script in ("full.sh", "fast.sh"):
        (project.code_dir / script).write_text("python ../code/train.py\n")
    return project


def make_experiment(project, number, *, state=RunState.COMPLETE, rows=30, code=None, **kw):
    node, _ = ComputeNode.objects.get_or_create(hostname="node-1", defaults={"device": "CPU"})
    exp = Experiment.objects.create(project=project, number=number, state=state, **kw)
    trial = Trial.objects.create(experiment=exp, number=0, state=state, node=node)
    if rows:
        n = rows
        epoch = np.repeat(np.arange(3), n // 3)
        step = np.tile(np.arange(n // 3), 3)
        arr = HistoryArrays(
            np.arange(n),
            epoch,
            step,
            np.linspace(2.0, 0.5, n),
            np.where(step % 5 == 4, 1.0, np.nan),
            np.full(n, np.nan),
            "iter",
        )
        HistoryChunk.objects.create(
            trial=trial,
            first_seq=0,
            row_count=n,
            first_epoch=0,
            last_epoch=2,
            data=encode_chunk(arr),
        )
        TrialEpoch.objects.create(trial=trial, epoch=0, val_loss=1.2, score=1.1)
        trial.rows_stored = n
        trial.best_val_loss = 1.2
        trial.save()
    out = exp.output_dir
    (out / "code").mkdir(parents=True)
    for name, text in (code or {"train.py": f"print('exp{number}')\n"}).items():
        (out / "code" / name).write_text(text)
    trial.run_dir.mkdir()
    (trial.run_dir / "log.txt").write_text("line one\nline two\n")
    (trial.run_dir / "model.pth").write_bytes(b"\x00weights")
    return exp


def login(client, user):
    client.force_login(user)
    return client


def exp_url(name, exp, **query):
    url = reverse(name, kwargs={"slug": exp.project.slug, "number": exp.number})
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


# ---------------------------------------------------------------- access


@pytest.mark.parametrize(
    ("who", "ok"), [("owner", True), ("collaborator", True), ("outsider", False)]
)
def test_read_access(client, project, users, who, ok):
    exp = make_experiment(project, 1)
    c = login(client, users[who])
    urls = [
        reverse("experiment_list", args=[project.slug]),
        exp_url("experiment_detail", exp),
        exp_url("experiment_history", exp),
        exp_url("experiment_status", exp),
        exp_url("experiment_log", exp),
        reverse("experiment_file", args=[project.slug, 1, "trial0/model.pth"]),
        reverse("experiment_compare", args=[project.slug]) + "?n=1",
        reverse("experiment_diff", args=[project.slug]) + "?a=1&b=1",
    ]
    for url in urls:
        assert c.get(url).status_code == (200 if ok else 404), url


@pytest.mark.parametrize(
    ("who", "ok"), [("owner", True), ("collaborator", True), ("outsider", False)]
)
def test_write_access(client, project, users, who, ok):
    exp = make_experiment(project, 1, state=RunState.RUNNING)
    c = login(client, users[who])
    assert c.post(exp_url("experiment_description", exp), {"description": "new"}).status_code == (
        302 if ok else 404
    )
    assert c.post(exp_url("experiment_cancel", exp)).status_code == (302 if ok else 404)
    assert c.post(exp_url("experiment_restore", exp)).status_code == (302 if ok else 404)
    start = c.post(reverse("experiment_start", args=[project.slug]), {"description": "x"})
    assert start.status_code == (302 if ok else 404)
    assert c.post(exp_url("experiment_delete", exp)).status_code == (302 if ok else 404)
    assert Experiment.objects.filter(pk=exp.pk).exists() is not ok
    if not ok:
        exp.refresh_from_db()
        assert exp.description == ""
        assert exp.state == RunState.RUNNING
        assert (project.code_dir / "train.py").read_text() == "print('current')\n"
        assert project.experiments.count() == 1


def test_all_experiments_lists_visible_only(client, project, outsider, collaborator):
    make_experiment(project, 1, description="mine")
    other = factories.make_project(outsider, "other", template="")
    make_experiment(other, 1, description="theirs")
    page = login(client, collaborator).get(reverse("all_experiments")).content.decode()
    assert "mine" in page
    assert "theirs" not in page


def test_train_without_full_sh_says_so_and_creates_nothing(client, project, owner):
    (project.code_dir / "full.sh").unlink()
    response = login(client, owner).post(
        reverse("experiment_start", args=[project.slug]), follow=True
    )
    assert "full.sh: not found in the project&#x27;s code/" in response.content.decode()
    assert not project.experiments.exists()


def test_requires_login(client, project):
    exp = make_experiment(project, 1)
    assert client.get(exp_url("experiment_detail", exp)).status_code == 302
    assert client.post(reverse("experiment_start", args=[project.slug])).status_code == 302
    assert not project.experiments.exclude(pk=exp.pk).exists()


# ---------------------------------------------------------------- train / cancel


@pytest.mark.parametrize(("fast", "kind"), [(False, "train"), (True, "fast_train")])
def test_train_button_starts_experiment(client, project, owner, fast, kind):
    data = {"description": "first try"}
    if fast:
        data["fast"] = "on"
    response = login(client, owner).post(reverse("experiment_start", args=[project.slug]), data)
    exp = project.experiments.get()
    assert response.status_code == 302
    assert response.url == exp_url("experiment_detail", exp)
    assert exp.kind == kind
    assert exp.description == "first try"
    assert exp.created_by == owner
    assert exp.trials.get().state == RunState.QUEUED


def test_a_queued_run_shows_the_config_it_will_read_with_its_comments(client, project, owner):
    (project.code_dir / "config.yaml").write_text("lr: 0.05  # tuned by hand\n")
    c = login(client, owner)
    c.post(reverse("experiment_start", args=[project.slug]), {})
    exp = project.experiments.get()
    (project.code_dir / "config.yaml").write_text("lr: 0.9\n")  # edited after the click
    assert not (exp.trials.get().run_dir / "config.yaml").exists()  # no worker has started it
    page = c.get(exp_url("experiment_detail", exp)).content.decode()
    assert "lr: 0.05  # tuned by hand" in page


def test_cancel_running_experiment(client, project, owner):
    exp = make_experiment(project, 1, state=RunState.RUNNING)
    login(client, owner).post(exp_url("experiment_cancel", exp))
    exp.refresh_from_db()
    assert exp.state == RunState.CANCELLED
    assert exp.trials.get().state == RunState.CANCELLED


# ---------------------------------------------------------------- list and detail


def test_tracking_list_columns(client, project, owner):
    make_experiment(project, 1, description="baseline run", best_value=0.4321)
    make_experiment(project, 2, state=RunState.FAILED, failure_reason="boom")
    make_experiment(project, 3, kind=Experiment.Kind.FAST_SWEEP, best_value=0.1697)
    page = (
        login(client, owner).get(reverse("experiment_list", args=[project.slug])).content.decode()
    )
    assert page.index("exp3</a>") < page.index("exp2</a>") < page.index("exp1</a>")  # newest first
    # A Fast Sweep's best is a score, not a validation loss: the column says so.
    assert re.search(r"0\.1697 <span[^>]*>score</span>", page)
    assert not re.search(r"0\.4321 <span[^>]*>score</span>", page)
    for needle in (
        "exp1",
        "exp2",
        "baseline run",
        "Complete",
        "Failed",
        "node-1",
        "0.4321",
        "Training",
    ):
        assert needle in page


def test_lists_count_a_shared_projects_trials_once(client, project, owner, collaborator):
    project.collaborators.add(factories.make_user("second-collaborator"))
    sweep = make_experiment(project, 1, kind=Experiment.Kind.SWEEP, rows=0)
    node = Trial.objects.get(experiment=sweep).node
    for number, loss in ((1, 0.5), (2, 0.25)):
        Trial.objects.create(experiment=sweep, number=number, node=node, best_val_loss=loss)
    for who in (owner, collaborator):
        page = login(client, who).get(reverse("all_experiments")).content.decode()
        assert "3 trials" in page  # not 6: the collaborators join repeats each trial
        assert "0.25" in page  # the best trial's loss (the sweep has no best_value yet)
        assert page.count("node-1") == 1  # its node once


def test_detail_page(client, project, owner):
    exp = make_experiment(project, 1, description="desc", state=RunState.FAILED)
    exp.failure_reason = "Traceback: RuntimeError boom"
    exp.save()
    (exp.output_dir / "trial0" / "config.yaml").write_text("lr: 0.123\n")
    page = login(client, owner).get(exp_url("experiment_detail", exp)).content.decode()
    assert "lr: 0.123" in page  # the config it ran with, not the project's (lr: 0.05)
    assert "RuntimeError boom" in page
    assert "model.pth" in page
    assert f"/ws/experiments/{exp.pk}/" in page
    assert reverse("plotly_js") in page
    assert "code/train.py" not in page  # the snapshot is not listed as an output


def test_a_sweep_trials_page_times_that_trial_not_the_sweep(client, project, owner):
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 4, 14, 30, 0, tzinfo=UTC)
    sweep = make_experiment(
        project,
        1,
        kind=Experiment.Kind.SWEEP,
        rows=0,
        started_at=start,
        finished_at=start + timedelta(seconds=76),
    )
    Trial.objects.create(
        experiment=sweep,
        number=3,
        state=RunState.COMPLETE,
        started_at=start + timedelta(seconds=40),
        finished_at=start + timedelta(seconds=55.6),
    )
    c = login(client, owner)
    page = c.get(exp_url("experiment_detail", sweep, trial=3)).content.decode()
    assert re.search(r'Trial duration</div><div class="value" id="stat-duration"[^>]*>16s<', page)
    assert 'title="2026-12-04T14:30:40+00:00"' in page  # the trial's start, not the sweep's
    assert 'data-clock="trial"' in page  # the live clock follows the trial too
    status = c.get(exp_url("experiment_status", sweep)).json()
    trial3 = next(t for t in status["trials"] if t["number"] == 3)
    assert trial3["started_at"].startswith("2026-12-04T14:30:40")
    # A single run keeps the experiment's own clock, as its list row shows it.
    single = make_experiment(project, 2, started_at=start, finished_at=start + timedelta(seconds=9))
    page = c.get(exp_url("experiment_detail", single)).content.decode()
    assert re.search(r'>Duration</div><div class="value" id="stat-duration"[^>]*>9s<', page)
    assert 'data-clock="experiment"' in page


def test_api_experiment_page_shows_its_definition_instead_of_log_and_files(client, project, owner):
    spec = {"name": "lr search", "parameters": [{"name": "lr", "type": "double"}],
            "study_name": "luminide-api-x", "updated": 1}  # fmt: skip
    exp = make_experiment(project, 1, kind=Experiment.Kind.API, spec=spec, rows=0)
    page = login(client, owner).get(exp_url("experiment_detail", exp)).content.decode()
    assert 'id="api-definition"' in page and "name: lr search" in page and "type: double" in page
    assert "luminide-api-x" not in page  # internal keys stay hidden
    assert 'id="log"' not in page and "Output files" not in page


def test_a_run_from_before_trial_folders_still_shows_its_log_and_config(client, project, owner):
    exp = make_experiment(project, 1)
    trial = exp.trials.get()
    for name in ("log.txt", "model.pth"):  # the old layout: everything in expN itself
        (trial.run_dir / name).rename(exp.output_dir / name)
    trial.run_dir.rmdir()
    (exp.output_dir / "config.yaml").write_text("lr: 0.321\n")
    c = login(client, owner)
    assert "lr: 0.321" in c.get(exp_url("experiment_detail", exp)).content.decode()
    assert c.get(exp_url("experiment_log", exp)).json()["text"] == "line one\nline two\n"


def test_history_endpoint_and_cursor(client, project, owner):
    exp = make_experiment(project, 1, rows=30)
    c = login(client, owner)
    full = c.get(exp_url("experiment_history", exp)).json()
    assert full["experiment"]["state"] == "complete"
    history = full["history"]
    assert history["cursor"] == 30
    assert len(history["series"]["train"]["x"]) == 30
    assert history["epochs"][0]["score"] == 1.1
    again = c.get(exp_url("experiment_history", exp, after=30)).json()["history"]
    assert again["after"] == 30
    assert again["series"]["train"]["x"] == []
    assert again["epochs"][0]["score"] == 1.1  # epochs always come with a re-sync
    tail = c.get(exp_url("experiment_history", exp, after=25)).json()["history"]
    assert len(tail["series"]["train"]["x"]) == 5


def test_history_endpoint_without_trial(client, project, owner):
    exp = Experiment.objects.create(project=project, number=7)
    body = login(client, owner).get(exp_url("experiment_history", exp)).json()
    assert body["history"] is None


def test_log_endpoint_with_offset(client, project, owner):
    exp = make_experiment(project, 1)
    c = login(client, owner)
    first = c.get(exp_url("experiment_log", exp)).json()
    assert first["text"] == "line one\nline two\n"
    with (exp.output_dir / "trial0" / "log.txt").open("a") as fh:
        fh.write("line three\n")
    more = c.get(exp_url("experiment_log", exp, after=first["cursor"])).json()
    assert more["text"] == "line three\n"


def test_download_output_file_and_refuse_traversal(client, project, owner):
    make_experiment(project, 1)
    (project.root / "secret.txt").write_text("nope")
    c = login(client, owner)
    response = c.get(reverse("experiment_file", args=[project.slug, 1, "trial0/model.pth"]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x00weights"
    assert "attachment" in response["Content-Disposition"]
    for bad in ("../../secret.txt", "..%2F..%2Fsecret.txt", "nothing.txt"):
        url = reverse("experiment_file", args=[project.slug, 1, "x"]).removesuffix("x") + bad
        assert c.get(url).status_code == 404, bad


# ---------------------------------------------------------------- edit / delete / restore


def test_edit_description(client, project, owner):
    exp = make_experiment(project, 1)
    login(client, owner).post(exp_url("experiment_description", exp), {"description": "  better  "})
    exp.refresh_from_db()
    assert exp.description == "better"


def test_delete_running_experiment_cancels_first(client, project, owner, monkeypatch):
    import sweeps.actions

    exp = make_experiment(project, 1, state=RunState.RUNNING)
    cancelled = []
    real_cancel = sweeps.actions.do_cancel_experiment
    monkeypatch.setattr(
        sweeps.actions,
        "do_cancel_experiment",
        lambda e, *a, **k: cancelled.append(e.pk) or real_cancel(e, *a, **k),
    )
    out = exp.output_dir
    response = login(client, owner).post(exp_url("experiment_delete", exp))
    assert response.status_code == 302
    assert cancelled == [exp.pk]
    assert not Experiment.objects.filter(pk=exp.pk).exists()
    assert not out.exists()


def test_restore_code_keeps_current_code(client, project, owner):
    exp = make_experiment(project, 3, code={"train.py": "print('exp3')\n", "extra.py": "X = 3\n"})
    response = login(client, owner).post(exp_url("experiment_restore", exp))
    assert response.status_code == 302
    assert (project.code_dir / "train.py").read_text() == "print('exp3')\n"
    assert (project.code_dir / "extra.py").read_text() == "X = 3\n"
    assert not (project.code_dir / "config.yaml").exists()
    backups = sorted(project.root.glob("code-backup-*"))
    assert len(backups) == 1
    assert (backups[0] / "train.py").read_text() == "print('current')\n"
    assert (backups[0] / "config.yaml").read_text() == "lr: 0.05\n"
    # The snapshot itself is untouched.
    assert (exp.output_dir / "code" / "train.py").read_text() == "print('exp3')\n"


def test_restore_without_snapshot(client, project, owner):
    exp = Experiment.objects.create(project=project, number=9)
    login(client, owner).post(exp_url("experiment_restore", exp))
    assert (project.code_dir / "train.py").read_text() == "print('current')\n"
    assert not list(project.root.glob("code-backup-*"))


# ---------------------------------------------------------------- compare / diff


def test_compare_page(client, project, owner):
    make_experiment(project, 1)
    make_experiment(project, 2)
    page = (
        login(client, owner)
        .get(reverse("experiment_compare", args=[project.slug]) + "?n=1&n=2")
        .content.decode()
    )
    assert 'id="compare-series"' in page
    assert reverse("experiment_history", args=[project.slug, 2]) in page


def test_compare_charts_a_sweeps_best_trial(client, project, owner):
    make_experiment(project, 1)
    sweep = make_experiment(project, 2, kind=Experiment.Kind.SWEEP, rows=0, best_value=0.2)
    for number, value in ((1, 0.9), (2, 0.2), (3, None)):
        Trial.objects.create(experiment=sweep, number=number, state=RunState.COMPLETE, value=value)
    # An API experiment that maximises its metric: its best is the highest value.
    api = make_experiment(project, 3, kind=Experiment.Kind.API, rows=0, best_value=0.95)
    for number, value in ((1, 0.1), (2, 0.95)):
        Trial.objects.create(experiment=api, number=number, state=RunState.COMPLETE, value=value)
    page = (
        login(client, owner)
        .get(reverse("experiment_compare", args=[project.slug]) + "?n=1&n=2&n=3")
        .content.decode()
    )
    found = re.search(r'<script id="compare-series" type="application/json">(.*?)</script>', page)
    series = json.loads(found.group(1))
    assert [(s["name"], s["trial"]) for s in series] == [
        ("exp1", 0),
        ("exp2 trial 2", 2),
        ("exp3 trial 2", 2),
    ]


def test_code_diff(client, project, owner):
    make_experiment(project, 1, code={"train.py": "a = 1\nb = 2\n", "old.py": "gone\n"})
    make_experiment(project, 2, code={"train.py": "a = 1\nb = 3\n", "new.py": "hello\n"})
    page = (
        login(client, owner)
        .get(reverse("experiment_diff", args=[project.slug]) + "?a=1&b=2")
        .content.decode()
    )
    assert "-b = 2" in page
    assert "+b = 3" in page
    assert "old.py" in page
    assert "removed" in page
    assert "new.py" in page
    assert "added" in page


def test_inline_view_never_serves_html(client, project, owner):
    exp = make_experiment(project, 1)
    (exp.output_dir / "trial0" / "evil.html").write_text("<script>alert(1)</script>")
    (exp.output_dir / "trial0" / "history.csv").write_text("a,b\n1,2\n")
    c = login(client, owner)
    base = reverse("experiment_file", args=[project.slug, 1, "x"]).removesuffix("x")
    html = c.get(base + "trial0/evil.html?inline=1")
    assert "attachment" in html["Content-Disposition"]
    csv = c.get(base + "trial0/history.csv?inline=1")
    assert csv["Content-Type"].startswith("text/plain")
    assert csv["Content-Disposition"] == "inline"
    assert "sandbox" in csv["Content-Security-Policy"]


def test_tracking_list_queries_do_not_grow_with_experiments(
    client, project, owner, django_assert_max_num_queries
):
    c = login(client, owner)
    make_experiment(project, 1, rows=0)
    url = reverse("experiment_list", args=[project.slug])
    c.get(url)  # warm the session
    with django_assert_max_num_queries(8) as one:
        c.get(url)
    for n in range(2, 12):
        make_experiment(project, n, rows=0)
    with django_assert_max_num_queries(len(one.captured_queries)):
        page = c.get(url).content.decode()
    assert "exp11" in page
