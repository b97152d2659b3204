"""Helpers for the browser tests."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import DEMO_PASSWORD


def login(page: Page, url: str) -> None:
    """Log in as the demo user; lands on the project list."""
    page.goto(url + "/login/")
    page.fill("#id_username", "demo")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/projects/$"))


def shot(page: Page, screenshot_dir: Path, name: str) -> None:
    """Save a full-page screenshot as ``<screenshot_dir>/<name>.png`` (a test artefact)."""
    page.evaluate("window.scrollTo(0, 0)")  # the sticky nav would show mid-page otherwise
    page.wait_for_timeout(400)  # let Plotly finish drawing
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)
