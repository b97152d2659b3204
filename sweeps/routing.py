"""Websocket routes."""

from __future__ import annotations

from django.urls import re_path

from sweeps.consumers import ExperimentConsumer

websocket_urlpatterns = [
    re_path(r"^ws/experiments/(?P<experiment_id>\d+)/$", ExperimentConsumer.as_asgi()),
]
