"""Optuna studies for Luminide: storage, study creation and search-space mapping.

One small API shared by sweeps and the Training Monitor REST API::

    from sweeps import studies

    dists = search_space.parse_sweep_yaml(text).distributions  # sweep.yaml
    dists = studies.sigopt_distributions(body["parameters"])  # a SigOpt experiment body
    study = studies.create_study("exp-12", directions=["minimize"])
    trial = studies.ask(study, dists)          # an optuna.Trial with params sampled
    studies.tell(study, trial.number, value)   # or state=TrialState.FAIL
    studies.delete_study("exp-12")

Storage: ``optuna.storages.RDBStorage`` on the project database (the Django
``DATABASES["default"]`` URL), so studies live next to the experiments, survive restarts
and are shared by the web process and every worker. ``LUMINIDE_OPTUNA_STORAGE`` (env var or
Django setting) overrides the URL; tests use it because their Django database is in memory.

SQLite caveat: Optuna writes on its own connection. Never call these functions inside a
Django ``transaction.atomic()`` block on SQLite: the block holds the write lock (IMMEDIATE
transactions) and Optuna would wait on it until the busy timeout. Calls in one process are
serialised by a lock and retried on ``database is locked``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import optuna
from django.conf import settings
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

logger = logging.getLogger(__name__)

__all__ = [
    "SpaceError",
    "ask",
    "create_study",
    "delete_study",
    "get_storage",
    "load_study",
    "sigopt_distributions",
    "storage_url",
    "tell",
]

T = TypeVar("T")

_storages: dict[str, optuna.storages.RDBStorage] = {}
_storages_lock = threading.Lock()
# SQLite allows one writer; serialising Optuna calls in-process avoids lock storms.
_sqlite_lock = threading.RLock()


class SpaceError(ValueError):
    """A search space that cannot be mapped; ``field`` names the offending entry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- storage -------------------------------------------------------------------------


def storage_url(db: Mapping[str, Any] | None = None) -> str:
    """SQLAlchemy URL of the Optuna storage: the project database unless overridden.

    Args:
        db: A Django database settings dict; default ``DATABASES["default"]``.
    """
    override = os.environ.get("LUMINIDE_OPTUNA_STORAGE") or getattr(
        settings, "LUMINIDE_OPTUNA_STORAGE", ""
    )
    if override:
        return override
    if db is None:
        db = settings.DATABASES["default"]
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            # An in-memory database is private to Django's connection.
            path = settings.LUMINIDE_VAR_DIR / "optuna-memory-db.sqlite3"
            path.parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{path}"
        return f"sqlite:///{name}"
    if "postgresql" in engine:
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgresql+psycopg://{auth}{host}{port}/{db['NAME']}"
    raise ValueError(f"no Optuna storage mapping for database engine {engine}")


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def get_storage() -> optuna.storages.RDBStorage:
    """The process-wide ``RDBStorage`` (one engine per URL; creating one costs ~50 ms)."""
    url = storage_url()
    with _storages_lock:
        storage = _storages.get(url)
        if storage is None:
            engine_kwargs: dict[str, Any] = {}
            if _is_sqlite(url):
                engine_kwargs = {"connect_args": {"timeout": 30}}
            else:
                engine_kwargs = {"pool_pre_ping": True}
            storage = _retry(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs))
            _storages[url] = storage
        return storage


def _retry(fn: Callable[[], T], attempts: int = 5) -> T:
    """Run ``fn``, serialised on SQLite and retried while the database is locked."""
    from sqlalchemy.exc import OperationalError

    url = storage_url()
    lock = _sqlite_lock if _is_sqlite(url) else contextlib.nullcontext()
    _check_not_in_transaction(url)
    for attempt in range(attempts):
        try:
            with lock:
                return fn()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _check_not_in_transaction(url: str) -> None:
    """Fail fast instead of waiting out the busy timeout (see the module docstring)."""
    from django.db import connection

    if (
        connection.vendor == "sqlite"
        and connection.in_atomic_block
        and url == f"sqlite:///{connection.settings_dict['NAME']}"
    ):
        raise RuntimeError(
            "Optuna storage shares the SQLite database: call sweeps.studies outside "
            "transaction.atomic() (tests: set LUMINIDE_OPTUNA_STORAGE to another file)"
        )


def _sampler(seed: int | None = None) -> optuna.samplers.BaseSampler:
    # constant_liar: parallel suggestions (parallel_bandwidth > 1) stay diverse.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def create_study(
    name: str, directions: Sequence[str] = ("minimize",), *, seed: int | None = None
) -> optuna.Study:
    """Create (or load, if it exists) the study ``name`` with a TPE sampler."""
    storage = get_storage()
    return _retry(
        lambda: optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(seed),
            directions=list(directions),
            load_if_exists=True,
        )
    )


def load_study(name: str, *, seed: int | None = None) -> optuna.Study:
    """Load an existing study (TPE sampler; sampler state is rebuilt from the trials)."""
    storage = get_storage()
    return _retry(
        lambda: optuna.load_study(study_name=name, storage=storage, sampler=_sampler(seed))
    )


def delete_study(name: str) -> bool:
    """Delete the study if it exists; returns whether it did."""
    storage = get_storage()
    try:
        _retry(lambda: optuna.delete_study(study_name=name, storage=storage))
    except KeyError:
        return False
    return True


def ask(
    study: optuna.Study,
    distributions: Mapping[str, BaseDistribution],
    fixed_params: Mapping[str, Any] | None = None,
) -> optuna.Trial:
    """Ask the study for a new trial and sample every distribution.

    ``fixed_params`` enqueues those values first (a user-chosen suggestion).
    """
    if not fixed_params:
        return _retry(lambda: study.ask(dict(distributions)))
    tag = uuid.uuid4().hex
    for _attempt in range(5):
        trial = _retry(lambda: _ask_enqueued(study, distributions, fixed_params, tag))
        if trial.user_attrs.get(_FIXED_TAG) == tag:
            return trial
        # An ask in another process took our waiting trial (the study hands out the oldest
        # one): this trial is not the one asked for. Drop it and enqueue again.
        tell(study, trial.number, state=TrialState.FAIL)
    raise RuntimeError(f"study {study.study_name}: fixed values kept going to other asks")


_FIXED_TAG = "luminide_fixed_request"


def _ask_enqueued(
    study: optuna.Study,
    distributions: Mapping[str, BaseDistribution],
    fixed_params: Mapping[str, Any],
    tag: str,
) -> optuna.Trial:
    study.enqueue_trial(dict(fixed_params), user_attrs={_FIXED_TAG: tag}, skip_if_exists=False)
    return study.ask(dict(distributions))


def tell(
    study: optuna.Study,
    number: int,
    value: float | Sequence[float] | None = None,
    *,
    state: TrialState | None = None,
) -> None:
    """Finish trial ``number`` (idempotent: a trial already finished is left alone)."""
    _retry(lambda: study.tell(number, value, state=state, skip_if_finished=True))


# --- search spaces -------------------------------------------------------------------


def sigopt_distributions(parameters: Sequence[Mapping[str, Any]]) -> dict[str, BaseDistribution]:
    """Map validated SigOpt ``parameters`` (double/int/categorical) to Optuna distributions."""
    dists: dict[str, BaseDistribution] = {}
    for i, p in enumerate(parameters):
        field = f"parameters[{i}]"
        kind = p.get("type")
        log = p.get("transformation") == "log"
        if kind == "categorical":
            names = [v["name"] if isinstance(v, Mapping) else v for v in p["categorical_values"]]
            dists[p["name"]] = CategoricalDistribution(names)
        elif kind == "double":
            lo, hi = float(p["bounds"]["min"]), float(p["bounds"]["max"])
            _check_bounds(field, lo, hi, log)
            dists[p["name"]] = FloatDistribution(lo, hi, log=log)
        elif kind == "int":
            lo, hi = int(p["bounds"]["min"]), int(p["bounds"]["max"])
            _check_bounds(field, lo, hi, log)
            dists[p["name"]] = IntDistribution(lo, hi, log=log)
        else:
            raise SpaceError(f"{field}.type", f"unknown parameter type {kind!r}")
    return dists


def _check_bounds(field: str, lo: float, hi: float, log: bool) -> None:
    if not lo < hi:
        raise SpaceError(f"{field}.min", "min must be less than max")
    if log and lo <= 0:
        raise SpaceError(f"{field}.min", "min must be positive on a log scale")
