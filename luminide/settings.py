"""Luminide settings: one module, configured by environment variables only.

The embedded default (``make run``) needs no variables at all: SQLite and an embedded Redis
on a unix socket under ``var/``. A scaled-out deployment sets ``DATABASE_URL``,
``REDIS_URL``, ``LUMINIDE_DATA_DIR`` and ``SECRET_KEY`` (see ``docker/``).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    SECRET_KEY = "insecure-local-development-key-change-me"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Where projects, their data and experiment outputs live; shared by web and workers.
LUMINIDE_DATA_DIR = Path(env_str("LUMINIDE_DATA_DIR", str(BASE_DIR / "data"))).resolve()
# Runtime files of the embedded default (Redis socket, pid files).
LUMINIDE_VAR_DIR = Path(env_str("LUMINIDE_VAR_DIR", str(BASE_DIR / "var"))).resolve()
LUMINIDE_DATA_DIR.mkdir(parents=True, exist_ok=True)

# One Redis URL for both Celery and Channels. The embedded default is a unix socket.
REDIS_URL = env_str("REDIS_URL", f"unix://{LUMINIDE_VAR_DIR / 'redis.sock'}")


def celery_broker_url(redis_url: str) -> str:
    """Celery names the unix-socket transport ``redis+socket://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "luminide",
    "sweeps",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "luminide.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "luminide.wsgi.application"
ASGI_APPLICATION = "luminide.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{LUMINIDE_DATA_DIR / 'luminide.sqlite3'}")
    )
}
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
# Seconds a connection is kept between requests. Opening a SQLite one costs ~0.6 ms (its
# PRAGMAs, Django's SQL functions), a tenth of a REST checkpoint; the API's requests share
# one thread per process (luminide.asgi.ApiHandler), so they share one connection. A server
# database keeps Django's advice for ASGI (0: close after each request).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 300 if _SQLITE else 0)
if _SQLITE:
    # Web, worker and sweep actions write concurrently: WAL + a generous busy timeout.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = LUMINIDE_VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request otherwise
# Serve from the finders in development so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True


def channel_layer_hosts(redis_url: str) -> list[dict]:
    """channels-redis ``hosts`` for ``redis_url``.

    redis-py 8 gives asyncio connections a 5 s socket timeout, the same as the layer's
    blocking-pop timeout: an idle websocket consumer would die with "Timeout reading from
    socket" after ~5 s. Reads may block up to brpop_timeout (5 s), so allow more.
    """
    return [{"address": redis_url, "socket_timeout": 30, "socket_connect_timeout": 10}]


CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": channel_layer_hosts(REDIS_URL)},
    }
}

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training jobs go to the `gpu` queue (one job per worker process = one GPU).
CELERY_TASK_ROUTES = {"sweeps.run_trial": {"queue": "gpu"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Training runs are long; a hard limit only stops runaway jobs.
CELERY_TASK_TIME_LIMIT = env_int("LUMINIDE_TASK_TIME_LIMIT", 7 * 24 * 3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A training task may run for days: keep the redis visibility timeout above that.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600}

# Seconds between worker heartbeats, and after how many missed seconds a node is lost.
LUMINIDE_HEARTBEAT_SECONDS = env_int("LUMINIDE_HEARTBEAT_SECONDS", 10)
LUMINIDE_NODE_TIMEOUT_SECONDS = env_int("LUMINIDE_NODE_TIMEOUT_SECONDS", 45)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
