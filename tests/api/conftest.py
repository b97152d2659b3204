"""Fixtures for the Training Monitor REST API tests: tokens and an authorised JSON client.

Users (``owner``, ``collaborator``, ``outsider``) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import base64
import copy

import pytest

from luminide.models import ApiToken, Project


@pytest.fixture(scope="session")
def optuna_url(luminide_tmp) -> str:
    return f"sqlite:///{luminide_tmp / 'optuna-api.sqlite3'}"


@pytest.fixture(autouse=True)
def _optuna_storage(settings, optuna_url):
    # Optuna writes on its own connection; inside a `db` test the test transaction holds
    # SQLite's write lock, so studies live in a file of their own.
    settings.LUMINIDE_OPTUNA_STORAGE = optuna_url


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(f"{raw}:".encode()).decode()


@pytest.fixture
def token(owner) -> str:
    return ApiToken.issue(owner, "test")[1]


@pytest.fixture
def outsider_token(outsider) -> str:
    return ApiToken.issue(outsider, "test")[1]


@pytest.fixture
def collaborator_token(collaborator) -> str:
    return ApiToken.issue(collaborator, "test")[1]


class Api:
    """The Django test client with a token, speaking JSON."""

    def __init__(self, client, raw: str) -> None:
        self.client = client
        self.auth = basic(raw)

    def _call(self, method: str, path: str, body=None, query=None):
        fn = getattr(self.client, method)
        if method in ("get", "delete"):
            return fn(path, query, HTTP_AUTHORIZATION=self.auth)
        return fn(
            path,
            body if body is not None else {},
            content_type="application/json",
            HTTP_AUTHORIZATION=self.auth,
        )

    def get(self, path, **query):
        return self._call("get", path, query=query or None)

    def post(self, path, body=None):
        return self._call("post", path, body)

    def put(self, path, body=None):
        return self._call("put", path, body)

    def delete(self, path):
        return self._call("delete", path)

    # Shortcuts for building state.
    def experiment(self, body) -> dict:
        r = self.post("/v1/experiments", body)
        assert r.status_code == 201, r.json()
        return r.json()

    def run(self, experiment_id: str) -> tuple[dict, dict]:
        s = self.post(f"/v1/experiments/{experiment_id}/suggestions")
        assert s.status_code == 201, s.json()
        r = self.post(
            f"/v1/experiments/{experiment_id}/training_runs", {"suggestion": s.json()["id"]}
        )
        assert r.status_code == 201, r.json()
        return s.json(), r.json()

    def checkpoint(self, run_id: str, value: float, name: str = "val_loss"):
        return self.post(
            f"/v1/training_runs/{run_id}/checkpoints", {"values": [{"name": name, "value": value}]}
        )


@pytest.fixture
def api(client, token) -> Api:
    return Api(client, token)


@pytest.fixture
def outsider_api(client, outsider_token) -> Api:
    return Api(client, outsider_token)


@pytest.fixture
def collaborator_api(client, collaborator_token) -> Api:
    return Api(client, collaborator_token)


@pytest.fixture
def shared_project(owner, collaborator) -> Project:
    project = Project.objects.create(slug="shared-api", name="shared", owner=owner)
    project.collaborators.add(collaborator)
    return project


EXPERIMENT = {
    "name": "mlp tuning",
    "parameters": [
        {
            "name": "lr",
            "type": "double",
            "bounds": {"min": 1e-4, "max": 1e-1},
            "transformation": "log",
        },
        {"name": "width", "type": "int", "bounds": {"min": 16, "max": 256}},
        {"name": "act", "type": "categorical", "categorical_values": ["relu", "tanh"]},
    ],
    "metrics": [{"name": "val_loss", "objective": "minimize"}],
    "observation_budget": 10,
    "parallel_bandwidth": 2,
    "training_monitor": {
        "max_checkpoints": 5,
        "early_stopping_criteria": [
            {"type": "convergence", "name": "flat", "lookback_checkpoints": 2, "min_checkpoints": 3}
        ],
    },
}


@pytest.fixture
def experiment_body() -> dict:
    return copy.deepcopy(EXPERIMENT)
