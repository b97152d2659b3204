"""Property-based fuzzing of the API from its served OpenAPI schema (schemathesis, in-process
through the WSGI app, positive and negative data): no input may produce a 500, and status
codes, content types and bodies match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from luminide.wsgi import application
from tests.api.conftest import EXPERIMENT

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", application)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def keep_connection(live_ids):
    """Like Django's test client: the WSGI app must not close the test's DB connection.
    (After ``live_ids``: the test client reconnects these receivers when it is done.)"""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def live_ids(api):
    """Real objects, so generated bodies reach validation and the actions (not only 404s)."""
    exp = api.experiment(EXPERIMENT)
    suggestion, run = api.run(exp["id"])
    checkpoint = api.checkpoint(run["id"], 0.5).json()
    return {
        "experiment_id": exp["id"],
        "suggestion_id": suggestion["id"],
        "run_id": run["id"],
        "observation_id": suggestion["id"],
        "checkpoint_id": checkpoint["id"],
    }


@pytest.mark.slow
@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case, api, live_ids, keep_connection):
    # Half the cases address real objects (bodies get validated), half random ids (404s);
    # never delete the shared experiment.
    if case.path_parameters and case.method != "DELETE" and hash(repr(case.body)) % 2 == 0:
        case.path_parameters = {k: live_ids[k] for k in case.path_parameters}
    case.call_and_validate(headers={"Authorization": api.auth}, checks=CHECKS)
