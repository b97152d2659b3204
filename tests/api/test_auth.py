"""Authentication (token as HTTP Basic username) and access: owner, collaborator, outsider."""

from __future__ import annotations

import base64

import pytest
from django.utils import timezone

from luminide.models import ApiToken
from tests.api.conftest import basic

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"wrong-token:").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Token abc",
        "Bearer ",
    ],
)
def test_missing_or_bad_token_is_401(client, owner, header):
    kwargs = {} if header is None else {"HTTP_AUTHORIZATION": header}
    r = client.get("/v1/experiments", **kwargs)
    assert r.status_code == 401
    assert r.json()["status"] == 401 and r.json()["message"]
    assert r["WWW-Authenticate"].startswith("Basic")


def test_revoked_token_is_401(client, owner, token):
    ApiToken.objects.filter(user=owner).update(revoked_at=timezone.now())
    assert client.get("/v1/experiments", HTTP_AUTHORIZATION=basic(token)).status_code == 401


def test_inactive_user_is_401(client, owner, token):
    owner.is_active = False
    owner.save()
    assert client.get("/v1/experiments", HTTP_AUTHORIZATION=basic(token)).status_code == 401


def test_bearer_token_also_works(client, token):
    assert client.get("/v1/experiments", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_token_use_is_recorded(client, owner, token):
    client.get("/v1/experiments", HTTP_AUTHORIZATION=basic(token))
    assert ApiToken.objects.get(user=owner).last_used_at is not None


def test_401_before_404_and_before_validation(client):
    assert client.get("/v1/experiments/1").status_code == 401
    assert client.post("/v1/experiments", "{", content_type="application/json").status_code == 401


def test_outsider_gets_404_everywhere(api, outsider_api, experiment_body):
    exp = api.experiment(experiment_body)
    s, run = api.run(exp["id"])
    cp = api.checkpoint(run["id"], 1.0).json()
    e = exp["id"]
    paths = [
        f"/v1/experiments/{e}",
        f"/v1/experiments/{e}/suggestions",
        f"/v1/experiments/{e}/suggestions/{s['id']}",
        f"/v1/experiments/{e}/training_runs",
        f"/v1/experiments/{e}/training_runs/{run['id']}",
        f"/v1/experiments/{e}/training_runs/{run['id']}/checkpoints",
        f"/v1/experiments/{e}/training_runs/{run['id']}/checkpoints/{cp['id']}",
        f"/v1/experiments/{e}/observations",
        f"/v1/experiments/{e}/best_assignments",
        f"/v1/training_runs/{run['id']}",
        f"/v1/training_runs/{run['id']}/checkpoints",
        f"/v1/training_runs/{run['id']}/checkpoints/{cp['id']}",
    ]
    for path in paths:
        r = outsider_api.get(path)
        assert r.status_code == 404, path
        assert "mlp" not in r.content.decode(), path
    writes = [
        ("post", f"/v1/experiments/{e}/suggestions", {}),
        ("post", f"/v1/experiments/{e}/training_runs", {"suggestion": s["id"]}),
        ("post", f"/v1/training_runs/{run['id']}/checkpoints", {"values": [{"value": 1}]}),
        ("post", f"/v1/experiments/{e}/observations", {"suggestion": s["id"], "value": 1}),
        ("put", f"/v1/experiments/{e}", {"name": "hijacked"}),
    ]
    for method, path, body in writes:
        assert getattr(outsider_api, method)(path, body).status_code == 404, path
    assert outsider_api.delete(f"/v1/experiments/{e}").status_code == 404
    assert outsider_api.get("/v1/experiments").json()["count"] == 0
    assert api.get(f"/v1/experiments/{e}").json()["name"] == "mlp tuning"


def test_collaborator_can_use_a_shared_projects_experiment(
    api, collaborator_api, shared_project, experiment_body
):
    experiment_body["project"] = shared_project.slug
    exp = api.experiment(experiment_body)
    assert collaborator_api.get(f"/v1/experiments/{exp['id']}").status_code == 200
    assert collaborator_api.get("/v1/experiments").json()["count"] == 1
    _, run = collaborator_api.run(exp["id"])
    assert collaborator_api.checkpoint(run["id"], 0.5).status_code == 201
    # Counts are not inflated by the collaborators join.
    progress = api.get(f"/v1/experiments/{exp['id']}").json()["progress"]
    assert progress["total_run_count"] == 1


def test_non_api_experiments_are_not_served(api, owner):
    from tests.factories import make_experiment, make_project

    project = make_project(owner, template="")
    exp = make_experiment(project)
    assert api.get(f"/v1/experiments/{exp.pk}").status_code == 404
    assert api.get("/v1/experiments").json()["count"] == 0
    run_id = exp.trials.get().pk
    assert api.get(f"/v1/training_runs/{run_id}").status_code == 404
