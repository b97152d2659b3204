"""Luminide: the Django project and the workspace app (projects, editor, nodes, users)."""

from __future__ import annotations

from .celery import app as celery_app

__all__ = ["celery_app"]
