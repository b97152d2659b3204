"""Websocket routes (filled in by the consumers)."""

from __future__ import annotations

websocket_urlpatterns: list = []
