"""Demo account of the embedded default (``make run``); printed by the launcher."""

from __future__ import annotations

import os

DEMO_USERNAME = "demo"
DEMO_PASSWORD = os.environ.get("LUMINIDE_DEMO_PASSWORD", "luminide-demo")
DEMO_PROJECT = "demo"
DEMO_TEMPLATE = "image-classification"
