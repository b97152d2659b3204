"""The one Celery app. Settings come from Django (``CELERY_`` namespace)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "luminide.settings")

app = Celery("luminide")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
