"""End-to-end fixtures: the whole embedded stack in a temporary data folder, and Chromium.

``luminide_stack`` runs what ``make run`` runs (migrate, ``bootstrap_demo``, then
``python -m luminide.launcher``: a real Redis, a real Celery worker and daphne serving HTTP
and websockets) with its own ``LUMINIDE_DATA_DIR``/``LUMINIDE_VAR_DIR`` and a free port, so
the browser tests exercise exactly what a user gets and never touch ``./data``.

Browser tests are sorted last (pytest-playwright's event loop stays running and would break
async tests that come after them; see STACK-NOTES).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from luminide.launcher import free_port, manage, running_launcher

# Actions such as creating a project (1,797 PNGs) or the first chart draw can exceed
# Playwright's 5 s default on a busy 2-core machine; the assertions stay the same.
expect.set_options(timeout=20_000)

# Playwright's sync API keeps an event loop running in this thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
DEMO_PASSWORD = "e2e-demo-password"
STAFF = ("staff", "e2e-staff-password")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Run browser tests after every other test (stable sort keeps their own order)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (scripts/install-system-deps.sh)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--disable-gpu", "--disable-dev-shm-usage"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@dataclass
class Stack:
    url: str
    data_dir: Path
    env: dict
    log: Path

    @property
    def demo_project(self) -> Path:
        return self.data_dir / "projects" / "demo"

    def manage(self, *args: str, timeout: float = 120) -> str:
        return manage(self.env, *args, timeout=timeout)


@pytest.fixture(scope="session")
def luminide_stack():
    """The embedded stack (Redis + worker + daphne) on a free port in a temp folder."""
    if not (REPO / "luminide" / "launcher.py").exists():
        pytest.skip("luminide.launcher is not there yet")
    root = Path(tempfile.mkdtemp(prefix="lum-e2e-", dir="/tmp"))  # short: unix socket path
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "luminide.settings",
        "LUMINIDE_DATA_DIR": str(root / "data"),
        "LUMINIDE_VAR_DIR": str(root / "var"),
        "REDIS_URL": f"unix://{root / 'var' / 'redis.sock'}",
        "LUMINIDE_PORT": str(port),
        "LUMINIDE_HOST": "127.0.0.1",
        "LUMINIDE_DEMO_PASSWORD": DEMO_PASSWORD,
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    stack = Stack(f"http://127.0.0.1:{port}", root / "data", env, root / "launcher.log")
    stack.manage("migrate", "--noinput", "-v", "0")
    stack.manage("bootstrap_demo")
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.create_superuser({STAFF[0]!r}, 'staff@example.org', {STAFF[1]!r})",
    )
    try:
        with running_launcher(env, stack.log):
            yield stack
    finally:
        if os.environ.get("LUMINIDE_E2E_KEEP"):
            print(f"e2e stack folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# One browser page per test module, shared by its tests (they run in order, logged in once).
@pytest.fixture(scope="module")
def app(browser, luminide_stack):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
