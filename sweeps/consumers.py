"""Websocket consumer: live events of one experiment (``ws/experiments/<id>/``)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from sweeps import events
from sweeps.models import Experiment


@database_sync_to_async
def _hello_for_user(user, experiment_id: int) -> dict | None:
    """The hello message if ``user`` may watch the experiment (same check as the pages)."""
    experiment = Experiment.objects.for_user(user).filter(pk=experiment_id).first()
    if experiment is None:
        return None
    return events.hello(experiment, experiment.trials.order_by("number"))


class ExperimentConsumer(AsyncJsonWebsocketConsumer):
    """Joins group ``experiment_<id>`` and forwards its events (see :mod:`sweeps.events`).

    The connection is refused (HTTP 403 on the handshake) for anonymous users and users
    who cannot see the experiment. The first message is ``hello`` with the cursors to
    re-sync from; after that, every group event is sent as it is.
    """

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        experiment_id = int(self.scope["url_route"]["kwargs"]["experiment_id"])
        hello = await _hello_for_user(user, experiment_id) if user is not None else None
        if hello is None:
            await self.close()
            return
        self.group = events.group_name(experiment_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(hello)

    async def disconnect(self, code) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # Clients only listen; they re-sync over HTTP.
        return

    async def _forward(self, event: dict) -> None:
        await self.send_json(event)

    async def events_batch(self, message: dict) -> None:
        for event in message["events"]:
            await self.send_json(event)

    # Channels maps the dotted type "history.rows" to the method history_rows.
    history_rows = _forward
    trial_update = _forward
    experiment_update = _forward
    log_lines = _forward
