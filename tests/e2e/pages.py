"""Helpers for the browser tests."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page


def shot(page: Page, screenshot_dir: Path, name: str) -> None:
    """Save a full-page screenshot as ``<screenshot_dir>/<name>.png`` (a test artefact)."""
    page.evaluate("window.scrollTo(0, 0)")  # the sticky nav would show mid-page otherwise
    page.wait_for_timeout(400)  # let Plotly finish drawing
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)
