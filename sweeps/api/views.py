"""Training Monitor REST API views: plain Django functions returning JSON.

Each URL maps HTTP methods to small handlers through :func:`endpoint`, which does the
parts every request shares: token authentication, CSRF exemption, JSON errors
``{"message", "status"}`` and the 405 answer. Object access goes through one helper per
object type, so no handler can forget the ownership check (another user's experiment is
a 404, never its data).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from luminide.models import ApiToken
from sweeps import studies
from sweeps.api import actions, render, validation
from sweeps.api.openapi import schema
from sweeps.api.validation import ApiError, bad
from sweeps.models import Checkpoint, Experiment, Trial

logger = logging.getLogger(__name__)

Handler = Callable[..., HttpResponse]
TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


# --- plumbing ------------------------------------------------------------------------


def error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"message": message, "status": status}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Luminide API"'
    if status == 429:
        response["Retry-After"] = "1"
    return response


def ok(data: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_body(request: HttpRequest) -> Any:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "request body too large") from None
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad("body", f"invalid JSON ({exc.__class__.__name__}: {str(exc)[:100]})") from None


def _authenticate(request: HttpRequest):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    raw = ""
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ApiError(401, "malformed Basic credentials") from None
        raw = decoded.partition(":")[0]
    elif scheme.lower() == "bearer":
        raw = credentials.strip()
    if not raw:
        raise ApiError(401, "an API token is required (HTTP Basic username)")
    token = ApiToken.objects.authenticate(raw)
    if token is None or not token.user.is_active:
        raise ApiError(401, "invalid or revoked API token")
    now = timezone.now()
    # A write per request would serialise every API call on SQLite: touch rarely.
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def endpoint(**handlers: Handler) -> Callable[..., HttpResponse]:
    """A view dispatching on the HTTP method to ``handlers[method](request, user, ...)``."""
    allowed = ", ".join(sorted(handlers))

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: str) -> HttpResponse:
        handler = handlers.get(request.method or "")
        try:
            user = _authenticate(request)
            if handler is None:
                response = error(405, f"{request.method} is not allowed here (use {allowed})")
                response["Allow"] = allowed
                return response
            return handler(request, user, **kwargs)
        except ApiError as exc:
            return error(exc.status, exc.message)
        except studies.SpaceError as exc:
            return error(400, str(exc))
        except Exception as exc:
            # Django's or SQLAlchemy's (Optuna) OperationalError: SQLite stayed busy past its
            # timeout. A retryable condition, not a bug: 429, which the sigopt client retries
            # with backoff (it retries no other status). The transaction was rolled back.
            if type(exc).__name__ == "OperationalError" and "locked" in str(exc):
                logger.warning("API %s %s: %s", request.method, request.path, exc)
                return error(429, "the database is busy; retry the request")
            logger.exception("API error on %s %s", request.method, request.path)
            return error(500, "internal error")

    return view


def _id(raw: str) -> int:
    """Parse an id from the URL; anything that is not one is a 404, not a 500."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(404, f"no object with id {raw!r}")
    return int(raw)


def _query(request: HttpRequest) -> dict[str, str]:
    return {key: request.GET.get(key, "") for key in request.GET}


# --- object access: one helper per object type ---------------------------------------


def _get_experiment_for_user(user, experiment_id: str, *, progress: bool = False) -> Experiment:
    # One indexed lookup, then the access check in Python: cheaper than for_user()'s
    # DISTINCT join on the hot checkpoint path. Not yours or not an API one: 404.
    qs = Experiment.objects.select_related("project").order_by()
    if progress:
        qs = render.with_progress(qs)
    exp = qs.filter(pk=_id(experiment_id), kind=Experiment.Kind.API).first()
    if exp is None or not exp.project.can_access(user):
        raise ApiError(404, f"no experiment {experiment_id}")
    return exp


def _get_trial(exp: Experiment, trial_id: str, *, what: str) -> Trial:
    trial = Trial.objects.filter(experiment=exp, pk=_id(trial_id)).order_by().first()
    if trial is None or (what == "training run" and trial.started_at is None):
        raise ApiError(404, f"no {what} {trial_id} in experiment {exp.pk}")
    if what == "observation" and trial.finished_at is None:
        raise ApiError(404, f"no observation {trial_id} in experiment {exp.pk}")
    return trial


def _get_run_for_user(user, run_id: str) -> tuple[Experiment, Trial]:
    trial = (
        Trial.objects.filter(
            pk=_id(run_id), started_at__isnull=False, experiment__kind=Experiment.Kind.API
        )
        .select_related("experiment__project")
        .order_by()
        .first()
    )
    if trial is None or not trial.experiment.project.can_access(user):
        raise ApiError(404, f"no training run {run_id}")
    return trial.experiment, trial


def _metric(exp: Experiment) -> str:
    return actions.optimized_metric(exp.spec)["name"]


# --- experiments ---------------------------------------------------------------------


def _best_observation(exp: Experiment) -> Trial | None:
    objective = actions.optimized_metric(exp.spec)["objective"]
    order = "value" if objective == "minimize" else "-value"
    return (
        Trial.objects.filter(experiment=exp, finished_at__isnull=False, value__isnull=False)
        .order_by(order, "pk")
        .first()
    )


def _experiment_response(user, experiment_id: str, status: int = 200) -> JsonResponse:
    exp = _get_experiment_for_user(user, experiment_id, progress=True)
    return ok(render.experiment(exp, _best_observation(exp)), status)


def experiments_create(request, user):
    spec = validation.experiment_create(_json_body(request))
    exp = actions.do_create_api_experiment(user, spec)
    return _experiment_response(user, str(exp.pk), 201)


def experiments_list(request, user):
    params = validation.page_params(_query(request))
    qs = render.with_progress(
        Experiment.objects.for_user(user).filter(kind=Experiment.Kind.API)
    ).select_related("project")
    # One query per listed experiment for its best observation (limit <= 1000).
    return ok(render.paginate(qs, params, lambda e: render.experiment(e, _best_observation(e))))


def experiment_fetch(request, user, experiment_id):
    return _experiment_response(user, experiment_id)


def experiment_update(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    changes = validation.experiment_update(_json_body(request))
    actions.do_update_api_experiment(exp, changes)
    return _experiment_response(user, experiment_id)


def experiment_delete(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    actions.do_delete_api_experiment(exp)
    return HttpResponse(status=204)


def best_assignments(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    params = validation.page_params(_query(request))
    best = _best_observation(exp)
    qs = Trial.objects.filter(pk=best.pk) if best else Trial.objects.none()

    def one(trial: Trial) -> dict[str, Any]:
        obs = render.observation(trial)
        return {
            "object": "best_assignments",
            "id": obs["id"],
            "assignments": obs["assignments"],
            "value": obs["value"],
            "value_stddev": obs["value_stddev"],
            "values": obs["values"],
        }

    return ok(render.paginate(qs, params, one))


# --- suggestions ---------------------------------------------------------------------


def suggestions_create(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    data = validation.suggestion_create(_json_body(request), exp.spec)
    trial = actions.do_create_suggestion(exp, data)
    return ok(render.suggestion(trial), 201)


def suggestions_list(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    query = _query(request)
    state = query.pop("state", "all") or "all"
    if state not in ("open", "closed", "all"):
        raise bad("state", 'must be "open", "closed" or "all"')
    qs = Trial.objects.filter(experiment=exp)
    if state != "all":
        qs = qs.filter(finished_at__isnull=state == "open")
    return ok(render.paginate(qs, validation.page_params(query), render.suggestion))


def suggestion_fetch(request, user, experiment_id, suggestion_id):
    exp = _get_experiment_for_user(user, experiment_id)
    return ok(render.suggestion(_get_trial(exp, suggestion_id, what="suggestion")))


# --- training runs -------------------------------------------------------------------


def training_runs_create(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    trial = actions.do_create_training_run(exp, validation.training_run_create(_json_body(request)))
    return ok(render.training_run(trial, _metric(exp)), 201)


def training_runs_list(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    params = validation.page_params(_query(request))
    qs = Trial.objects.filter(experiment=exp, started_at__isnull=False)
    metric = _metric(exp)
    return ok(render.paginate(qs, params, lambda t: render.training_run(t, metric)))


def training_run_fetch(request, user, experiment_id, run_id):
    exp = _get_experiment_for_user(user, experiment_id)
    return ok(render.training_run(_get_trial(exp, run_id, what="training run"), _metric(exp)))


def run_fetch(request, user, run_id):
    exp, trial = _get_run_for_user(user, run_id)
    return ok(render.training_run(trial, _metric(exp)))


# --- checkpoints ---------------------------------------------------------------------


def _checkpoints_create(request, user, run_id: str, experiment_id: str | None = None):
    cp = actions.do_create_checkpoint(
        user,
        _id(run_id),
        _json_body(request),
        experiment_pk=None if experiment_id is None else _id(experiment_id),
    )
    return ok(render.checkpoint(cp), 201)


def _checkpoints_list(request, trial: Trial):
    params = validation.page_params(_query(request))
    qs = Checkpoint.objects.filter(trial=trial)
    return ok(render.paginate(qs, params, render.checkpoint))


def _checkpoint_fetch(trial: Trial, checkpoint_id: str):
    cp = Checkpoint.objects.filter(trial=trial, pk=_id(checkpoint_id)).order_by().first()
    if cp is None:
        raise ApiError(404, f"no checkpoint {checkpoint_id} in training run {trial.pk}")
    return ok(render.checkpoint(cp))


def checkpoints_create(request, user, experiment_id, run_id):
    return _checkpoints_create(request, user, run_id, experiment_id)


def checkpoints_list(request, user, experiment_id, run_id):
    exp = _get_experiment_for_user(user, experiment_id)
    return _checkpoints_list(request, _get_trial(exp, run_id, what="training run"))


def checkpoint_fetch(request, user, experiment_id, run_id, checkpoint_id):
    exp = _get_experiment_for_user(user, experiment_id)
    return _checkpoint_fetch(_get_trial(exp, run_id, what="training run"), checkpoint_id)


def run_checkpoints_create(request, user, run_id):
    return _checkpoints_create(request, user, run_id)


def run_checkpoints_list(request, user, run_id):
    _, trial = _get_run_for_user(user, run_id)
    return _checkpoints_list(request, trial)


def run_checkpoint_fetch(request, user, run_id, checkpoint_id):
    _, trial = _get_run_for_user(user, run_id)
    return _checkpoint_fetch(trial, checkpoint_id)


# --- observations --------------------------------------------------------------------


def observations_create(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    data = validation.observation_create(_json_body(request), exp.spec)
    trial = actions.do_create_observation(exp, data)
    return ok(render.observation(trial), 201)


def observations_list(request, user, experiment_id):
    exp = _get_experiment_for_user(user, experiment_id)
    params = validation.page_params(_query(request))
    qs = Trial.objects.filter(experiment=exp, finished_at__isnull=False)
    return ok(render.paginate(qs, params, render.observation))


def observation_fetch(request, user, experiment_id, observation_id):
    exp = _get_experiment_for_user(user, experiment_id)
    return ok(render.observation(_get_trial(exp, observation_id, what="observation")))


# --- schema and fallbacks ------------------------------------------------------------


@csrf_exempt
def openapi_json(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 description of this API (no token needed)."""
    if request.method not in ("GET", "HEAD"):
        return error(405, f"{request.method} is not allowed here (use GET)")
    return JsonResponse(schema(request.build_absolute_uri("/")))


@csrf_exempt
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    return error(404, f"no API endpoint {request.path}")
