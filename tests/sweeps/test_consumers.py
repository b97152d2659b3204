"""ExperimentConsumer: access control (owner, collaborator, outsider) and event delivery."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from sweeps.actions import do_ingest_history
from sweeps.routing import websocket_urlpatterns
from tests import factories
from tests.factories import LAYOUT3_HEADER, layout3_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_server")]


@pytest.fixture
def experiment(project):
    return factories.make_experiment(project)


def _communicator(experiment_id: int, user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/experiments/{experiment_id}/"
    )
    comm.scope["user"] = user
    return comm


@pytest.mark.parametrize("who", ["owner", "collaborator"])
async def test_members_connect_and_get_hello(request, experiment, who):
    comm = _communicator(experiment.pk, request.getfixturevalue(who))
    connected, _ = await comm.connect(timeout=30)
    assert connected
    hello = await comm.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    assert hello["experiment"] == experiment.pk
    assert hello["trials"][0]["cursor"] == 0
    await comm.disconnect()


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
async def test_others_are_rejected(experiment, outsider, who):
    user = AnonymousUser() if who == "anonymous" else outsider
    comm = _communicator(experiment.pk, user)
    connected, _ = await comm.connect(timeout=30)
    assert not connected
    await comm.wait()


async def test_unknown_experiment_is_rejected(owner):
    comm = _communicator(999_999, owner)
    connected, _ = await comm.connect(timeout=30)
    assert not connected
    await comm.wait()


async def test_ingest_reaches_the_client(experiment, owner):
    comm = _communicator(experiment.pk, owner)
    assert (await comm.connect(timeout=30))[0]
    await comm.receive_json_from(timeout=5)  # hello
    trial = await sync_to_async(experiment.trials.get)()
    await sync_to_async(do_ingest_history)(trial, LAYOUT3_HEADER + layout3_rows(1, 4))
    rows = await comm.receive_json_from(timeout=5)
    assert rows["type"] == "history.rows"
    assert (rows["after"], rows["cursor"]) == (0, 5)
    assert len(rows["series"]["train"]["x"]) == 4
    update = await comm.receive_json_from(timeout=5)
    assert update["type"] == "trial.update" and update["epochs_done"] == 1
    await comm.disconnect()


async def test_full_asgi_app_uses_the_session_and_origin(experiment, owner, client):
    from luminide.asgi import application

    await sync_to_async(client.force_login)(owner)
    cookie = client.cookies["sessionid"].value
    headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", f"sessionid={cookie}".encode())]
    comm = WebsocketCommunicator(application, f"/ws/experiments/{experiment.pk}/", headers=headers)
    assert (await comm.connect(timeout=30))[0]
    assert (await comm.receive_json_from(timeout=5))["type"] == "hello"
    await comm.disconnect()
    # Without a session: refused.
    anon = WebsocketCommunicator(
        application, f"/ws/experiments/{experiment.pk}/", headers=headers[:1]
    )
    assert not (await anon.connect(timeout=30))[0]
    await anon.wait()
