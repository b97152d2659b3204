"""API experiments are ordinary experiments in the dashboard: lists, page, chart data, events."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from sweeps.models import Experiment

pytestmark = pytest.mark.django_db


def test_api_experiment_in_lists_page_and_history(api, client, owner, experiment_body):
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    for v in (0.8, 0.6):
        api.checkpoint(run["id"], v)
    e = Experiment.objects.get(pk=int(exp["id"]))
    client.force_login(owner)
    assert "mlp tuning" in client.get("/experiments/").content.decode()
    base = f"/projects/{e.project.slug}/experiments/"
    assert "mlp tuning" in client.get(base).content.decode()
    assert client.get(f"{base}{e.number}/").status_code == 200
    history = client.get(f"{base}{e.number}/history", {"trial": 0}).json()
    assert history["trial"]["state"] == "running"
    assert history["history"]["series"]["epoch_val"]["y"] == [0.8, 0.6]
    assert [row["val_loss"] for row in history["history"]["epochs"]] == [0.8, 0.6]


async def _drain(layer, channel):
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), 0.2))
        except TimeoutError:
            return messages


@pytest.mark.django_db(transaction=True)
def test_checkpoint_sends_history_rows_and_trial_update(api, experiment_body):
    from asgiref.sync import async_to_sync

    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"experiment_{exp['id']}", channel)
    api.checkpoint(run["id"], 0.5)
    # One channel-layer message carries both events (the consumer forwards them in order).
    (batch,) = async_to_sync(_drain)(layer, channel)
    assert batch["type"] == "events.batch"
    assert [m["type"] for m in batch["events"]] == ["history.rows", "trial.update"]
    rows, update = batch["events"]
    assert rows["trial_id"] == int(run["id"]) and (rows["after"], rows["cursor"]) == (0, 1)
    assert rows["series"]["epoch_val"]["y"] == [0.5]
    assert update["epochs_done"] == 1 and update["best_val_loss"] == 0.5
    assert update["cursor"] == 1 and update["state"] == "running"
