"""``/v1/`` routes of the Training Monitor REST API (the paths the SigOpt client builds)."""

from __future__ import annotations

from django.urls import path, re_path

from sweeps.api import views as v

E = "experiments/<str:experiment_id>"
R = "training_runs/<str:run_id>"

urlpatterns = [
    path("openapi.json", v.openapi_json, name="api-openapi"),
    path(
        "experiments",
        v.endpoint(POST=v.experiments_create, GET=v.experiments_list),
        name="api-experiments",
    ),
    path(
        E,
        v.endpoint(GET=v.experiment_fetch, PUT=v.experiment_update, DELETE=v.experiment_delete),
        name="api-experiment",
    ),
    path(f"{E}/best_assignments", v.endpoint(GET=v.best_assignments)),
    path(
        f"{E}/suggestions",
        v.endpoint(POST=v.suggestions_create, GET=v.suggestions_list),
        name="api-suggestions",
    ),
    path(f"{E}/suggestions/<str:suggestion_id>", v.endpoint(GET=v.suggestion_fetch)),
    path(
        f"{E}/training_runs",
        v.endpoint(POST=v.training_runs_create, GET=v.training_runs_list),
        name="api-training-runs",
    ),
    path(f"{E}/{R}", v.endpoint(GET=v.training_run_fetch)),
    path(
        f"{E}/{R}/checkpoints",
        v.endpoint(POST=v.checkpoints_create, GET=v.checkpoints_list),
        name="api-checkpoints",
    ),
    path(f"{E}/{R}/checkpoints/<str:checkpoint_id>", v.endpoint(GET=v.checkpoint_fetch)),
    path(R, v.endpoint(GET=v.run_fetch), name="api-run"),
    path(
        f"{R}/checkpoints",
        v.endpoint(POST=v.run_checkpoints_create, GET=v.run_checkpoints_list),
        name="api-run-checkpoints",
    ),
    path(f"{R}/checkpoints/<str:checkpoint_id>", v.endpoint(GET=v.run_checkpoint_fetch)),
    path(
        f"{E}/observations",
        v.endpoint(POST=v.observations_create, GET=v.observations_list),
        name="api-observations",
    ),
    path(f"{E}/observations/<str:observation_id>", v.endpoint(GET=v.observation_fetch)),
    # Anything else under /v1/ is a JSON 404, not Django's HTML page.
    re_path(r"^(?P<path>.*)$", v.not_found),
]
