"""Experiment pages: Run Experiment, tracking list, detail with live charts, compare, diff,
restore, and the JSON endpoints the live page re-syncs from.

Views are thin: state changes go through ``sweeps.actions``; every view reaches a project or
an experiment through ``_get_project_for_user`` / ``_get_experiment_for_user`` (404 for
users who neither own nor collaborate on the project).
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Min, Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from luminide import files
from luminide.models import Project
from sweeps.actions import (
    do_cancel_experiment,
    do_delete_experiment,
    do_start_experiment,
    do_update_experiment_description,
)
from sweeps.calibration import predict_final
from sweeps.models import ACTIVE_STATES, Experiment, RunState, Trial

MAX_DIFF_FILE_BYTES = 512 * 1024
INLINE_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
INLINE_TEXT_SUFFIXES = {".txt", ".log", ".csv", ".yaml", ".yml", ".json", ".py", ".sh", ".md"}
MAX_COMPARE = 8


def _get_project_for_user(request: HttpRequest, slug: str) -> Project:
    return get_object_or_404(Project.objects.for_user(request.user), slug=slug)


def _get_experiment_for_user(request: HttpRequest, project: Project, number: int) -> Experiment:
    """Experiment ``expN`` of an already access-checked project, else 404."""
    return get_object_or_404(
        Experiment.objects.select_related("project", "created_by"), project=project, number=number
    )


def _trials_prefetch() -> Prefetch:
    return Prefetch("trials", queryset=Trial.objects.select_related("node").order_by("number"))


def _main_trial(experiment: Experiment) -> Trial | None:
    trials = list(experiment.trials.all())
    return trials[0] if trials else None


def _for_list(queryset):
    """The experiment lists' queryset: counts and best loss aggregated by the database, not
    read from every trial (the lists are re-fetched every few seconds while open)."""
    return (
        queryset.select_related("project")
        .annotate(
            n_trials=Count("trials", distinct=True),  # distinct: a shared project's join repeats
            best_trial_loss=Min("trials__best_val_loss"),
        )
        .order_by(*Experiment._meta.ordering)  # an aggregate query drops Meta.ordering
    )


def _experiments_for_list(queryset):
    experiments = list(queryset)
    nodes: dict[int, set[str]] = {}
    for exp_id, hostname in (
        Trial.objects.filter(experiment__in=experiments, node__isnull=False)
        .values_list("experiment_id", "node__hostname")
        .distinct()
    ):
        nodes.setdefault(exp_id, set()).add(hostname)
    return [
        {
            "exp": exp,
            "nodes": sorted(nodes.get(exp.pk, ())),
            "best": exp.best_value if exp.best_value is not None else exp.best_trial_loss,
            "n_trials": exp.n_trials,
        }
        for exp in experiments
    ]


# ---------------------------------------------------------------- run / cancel


@login_required
@require_POST
def experiment_start(request: HttpRequest, slug: str) -> HttpResponse:
    """The Train button: start a training (``fast.sh`` when Fast Training is ticked)."""
    project = _get_project_for_user(request, slug)
    fast = request.POST.get("fast") in ("on", "1", "true")
    description = request.POST.get("description", "").strip()[:500]
    try:
        experiment = do_start_experiment(project, request.user, fast=fast, description=description)
    except ValueError as exc:
        messages.error(request, f"Could not start: {exc}")
        return redirect("project_ide", slug=project.slug)
    # No "queued" flash: the run page it lands on shows the state, live.
    return redirect("experiment_detail", slug=project.slug, number=experiment.number)


@login_required
@require_POST
def experiment_cancel(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    if experiment.kind == Experiment.Kind.API:
        # Cancelled trials would read as observations to the client that drives it.
        messages.error(
            request, f"{experiment.name} is driven by an API client: it ends there (or Delete)."
        )
    elif experiment.state in ACTIVE_STATES:
        do_cancel_experiment(experiment)
        messages.info(request, f"{experiment.name} cancelled.")
    return redirect(_next_url(request, experiment))


def _next_url(request: HttpRequest, experiment: Experiment) -> str:
    target = request.POST.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return target
    return reverse(
        "experiment_detail", kwargs={"slug": experiment.project.slug, "number": experiment.number}
    )


# ---------------------------------------------------------------- tracking list


@login_required
def experiment_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    queryset = _for_list(project.experiments.all())
    state = request.GET.get("state", "")
    if state:
        queryset = queryset.filter(state=state)
    return render(
        request,
        "sweeps/experiment_list.html",
        {
            "project": project,
            "rows": _experiments_for_list(queryset),
            "state": state,
            "nav": "experiments",
        },
    )


@login_required
def all_experiments(request: HttpRequest) -> HttpResponse:
    """Experiments across every project the user can see (the top-nav Experiments menu)."""
    queryset = _for_list(Experiment.objects.for_user(request.user)).order_by("-created_at")[:200]
    return render(
        request,
        "sweeps/experiment_list.html",
        {"project": None, "rows": _experiments_for_list(queryset), "nav": "experiments"},
    )


# ---------------------------------------------------------------- detail


@login_required
def experiment_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    if experiment.is_sweep and "trial" not in request.GET:  # sweep page: sweeps/sweep_views.py
        from sweeps.sweep_views import render_sweep_page

        return render_sweep_page(request, project, experiment)
    trials = list(experiment.trials.select_related("node").order_by("number"))
    wanted = _int_param(request, "trial", None)
    trial = next((t for t in trials if t.number == wanted), trials[0] if trials else None)
    config_text = _config_text(experiment, trial)
    # One trial of a sweep or an API client's experiment: the stats are all its own (even
    # while it is the only one so far).
    trial_clock = trial is not None and (
        experiment.is_sweep or experiment.kind == Experiment.Kind.API
    )
    api_definition = ""
    if experiment.kind == Experiment.Kind.API:
        import yaml

        shown = {k: v for k, v in experiment.spec.items() if k not in ("study_name", "updated")}
        api_definition = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)
    return render(
        request,
        "sweeps/experiment_detail.html",
        {
            "project": project,
            "exp": experiment,
            "trials": trials,
            "trial": trial,
            "trial_clock": trial_clock,
            "clocked": trial if trial_clock else experiment,
            "config_text": config_text,
            "prediction": (
                predict_final(trial)
                if trial is not None and experiment.kind == Experiment.Kind.FAST_TRAIN
                else None
            ),
            "api_definition": api_definition,
            "output_files": _output_files(experiment),
            "has_code_snapshot": _snapshot_dir(experiment) is not None,
            "is_active": experiment.state in ACTIVE_STATES,
            "nav": "experiments",
        },
    )


def _config_text(experiment: Experiment, trial: Trial | None) -> str:
    """The config the trial runs with (a sweep trial's sampled one; before a single run has
    copied it, the snapshot's, which it will copy), else the experiment's."""
    paths = [trial.run_dir / "config.yaml"] if trial is not None else []
    if not experiment.is_sweep:
        paths.append(experiment.output_dir / "code" / "config.yaml")
    for path in paths:
        if path.is_file() and not path.is_symlink():
            try:
                return files.read_text(path)
            except files.NotText:
                pass
    if experiment.config:
        import yaml

        return yaml.safe_dump(experiment.config, sort_keys=False)
    return ""


def _output_files(experiment: Experiment) -> list[dict]:
    """Files in the experiment's output folder (not the code snapshot), for download."""
    root = experiment.output_dir
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == "code" or any(p in files.HIDDEN_NAMES for p in rel.parts):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        found.append({"path": rel.as_posix(), "size": path.stat().st_size})
        if len(found) >= 500:
            break
    return found


@login_required
@require_GET
def experiment_file(request: HttpRequest, slug: str, number: int, path: str) -> FileResponse:
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    try:
        target = files.resolve_inside(experiment.output_dir, path)
    except files.UnsafePath:
        raise Http404("no such file") from None
    if not target.is_file():
        raise Http404("no such file")
    if request.GET.get("inline") == "1":
        # Shown in the browser, but never as HTML/JS/SVG from this origin: a training script
        # (or a collaborator) writes these files. Images keep their type, the rest is text.
        suffix = target.suffix.lower()
        if suffix in INLINE_IMAGE_TYPES:
            content_type = INLINE_IMAGE_TYPES[suffix]
        elif suffix in INLINE_TEXT_SUFFIXES:
            content_type = "text/plain; charset=utf-8"
        else:
            return FileResponse(target.open("rb"), as_attachment=True, filename=target.name)
        response = FileResponse(target.open("rb"), content_type=content_type)
        response["Content-Disposition"] = "inline"
        response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
        return response
    return FileResponse(target.open("rb"), as_attachment=True, filename=target.name)


@login_required
@require_GET
def experiment_history(request: HttpRequest, slug: str, number: int) -> JsonResponse:
    """Chart data of one trial after a cursor: what a (re)connecting page re-syncs from."""
    from sweeps.history import history_payload

    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    trial_number = _int_param(request, "trial", 0)
    after = _int_param(request, "after", None)
    trial = experiment.trials.filter(number=trial_number).first()
    if trial is None:
        return JsonResponse(
            {"experiment": _experiment_state(experiment), "trial": None, "history": None}
        )
    payload = history_payload(trial, after)
    if after is not None:
        # Per-epoch summaries are few: always send them, so a re-sync also brings the
        # Early Ranking scores computed since the last one.
        payload["epochs"] = _epoch_rows(trial)
    return JsonResponse(
        {
            "experiment": _experiment_state(experiment),
            "trial": _trial_state(trial),
            "history": payload,
        }
    )


@login_required
@require_GET
def experiment_status(request: HttpRequest, slug: str, number: int) -> JsonResponse:
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    trials = experiment.trials.select_related("node").order_by("number")
    return JsonResponse(
        {"experiment": _experiment_state(experiment), "trials": [_trial_state(t) for t in trials]}
    )


@login_required
@require_GET
def experiment_log(request: HttpRequest, slug: str, number: int) -> JsonResponse:
    """A trial's log after a byte offset (``?after=``); ``cursor`` is the offset to ask next."""
    from sweeps.history import log_payload

    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    trial = experiment.trials.filter(number=_int_param(request, "trial", 0)).first()
    if trial is None:
        return JsonResponse(
            {"trial": None, "offset": 0, "cursor": 0, "text": "", "truncated": False}
        )
    return JsonResponse(log_payload(trial, max(0, _int_param(request, "after", 0) or 0)))


def _epoch_rows(trial: Trial) -> list[dict]:
    from sweeps.history import json_float

    return [
        {
            "epoch": e.epoch,
            "train_loss": json_float(e.train_loss),
            "val_loss": json_float(e.val_loss),
            "score": json_float(e.score),
        }
        for e in trial.epochs.order_by("epoch")
    ]


def _int_param(request: HttpRequest, name: str, default):
    raw = request.GET.get(name, "")
    if raw in ("", "null", "undefined"):
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def _experiment_state(experiment: Experiment) -> dict:
    return {
        "id": experiment.pk,
        "number": experiment.number,
        "state": experiment.state,
        "failure_reason": experiment.failure_reason,
        "best_value": _finite(experiment.best_value),
        "started_at": _iso(experiment.started_at),
        "finished_at": _iso(experiment.finished_at),
    }


def _trial_state(trial: Trial) -> dict:
    return {
        "id": trial.pk,
        "number": trial.number,
        "state": trial.state,
        "node": trial.node.hostname if trial.node_id and trial.node else None,
        "best_val_loss": _finite(trial.best_val_loss),
        "score": _finite(trial.score),
        "epochs_done": trial.epochs_done,
        "rows_stored": trial.rows_stored,
        "failure_reason": trial.failure_reason,
        "started_at": _iso(trial.started_at),
        "finished_at": _iso(trial.finished_at),
    }


def _finite(value):
    """JSON-safe float: NaN -> None, +-inf -> "inf"/"-inf" (JSON has no infinities)."""
    if value is None or value != value:
        return None
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def _iso(value):
    return value.isoformat() if value else None


# ---------------------------------------------------------------- edit / delete / restore


@login_required
@require_POST
def experiment_description(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    do_update_experiment_description(experiment, request.POST.get("description", ""))
    messages.success(request, f"Description of {experiment.name} saved.")
    return redirect(_next_url(request, experiment))


@login_required
@require_POST
def experiment_delete(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Delete an experiment and its output folder; a running one is cancelled first."""
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    name = experiment.name
    do_delete_experiment(experiment)
    messages.info(request, f"{name} deleted.")
    return redirect("experiment_list", slug=project.slug)


def _snapshot_dir(experiment: Experiment) -> Path | None:
    """The ``code/`` snapshot an experiment ran with, if it was taken."""
    candidate = experiment.output_dir / "code"
    if candidate.is_dir() and not candidate.is_symlink():
        return candidate
    return None


@login_required
@require_POST
def experiment_restore(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Copy an experiment's code snapshot into ``code/``; the current code is moved to
    ``code-backup-<timestamp>/`` next to it first, so nothing is lost."""
    project = _get_project_for_user(request, slug)
    experiment = _get_experiment_for_user(request, project, number)
    snapshot = _snapshot_dir(experiment)
    if snapshot is None:
        messages.error(request, f"{experiment.name} has no code snapshot to restore.")
        return redirect(_next_url(request, experiment))
    backup = restore_code(project, snapshot)
    note = f" Previous code kept in {backup.name}/." if backup else ""
    messages.success(request, f"Code of {experiment.name} restored into code/.{note}")
    return redirect("project_ide", slug=project.slug)


def restore_code(project: Project, snapshot: Path) -> Path | None:
    """Replace ``project.code_dir`` with a copy of ``snapshot``; returns the backup folder."""
    code = project.code_dir
    staging = project.root / f".code-restore-{timezone.now():%Y%m%d-%H%M%S-%f}"
    shutil.copytree(snapshot, staging, symlinks=True)
    backup = None
    if code.exists():
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        backup = project.root / f"code-backup-{stamp}"
        suffix = 1
        while backup.exists():
            suffix += 1
            backup = project.root / f"code-backup-{stamp}-{suffix}"
        code.rename(backup)
    staging.rename(code)
    return backup


# ---------------------------------------------------------------- compare / diff


def _selected_numbers(request: HttpRequest, name: str = "n") -> list[int]:
    numbers: list[int] = []
    for raw in request.GET.getlist(name):
        for piece in raw.split(","):
            piece = piece.strip().removeprefix("exp")
            if piece.isdigit() and int(piece) not in numbers:
                numbers.append(int(piece))
    return numbers[:MAX_COMPARE]


@login_required
def experiment_compare(request: HttpRequest, slug: str) -> HttpResponse:
    """Curves of two or more experiments on one chart."""
    project = _get_project_for_user(request, slug)
    numbers = _selected_numbers(request)
    experiments = list(
        project.experiments.filter(number__in=numbers).prefetch_related(_trials_prefetch())
    )
    experiments.sort(key=lambda e: numbers.index(e.number))
    series = []
    for e in experiments:
        trials = list(e.trials.all())
        trial = _compared_trial(trials, e.best_value)
        series.append(
            {
                "number": e.number,
                "name": e.name if len(trials) < 2 else f"{e.name} trial {trial}",
                "description": e.description,
                "state": e.state,
                "trial": trial,
                "history_url": reverse(
                    "experiment_history", kwargs={"slug": project.slug, "number": e.number}
                ),
            }
        )
    choices = project.experiments.order_by("-number").only("number", "description", "state", "kind")
    return render(
        request,
        "sweeps/compare.html",
        {
            "project": project,
            "experiments": experiments,
            "series": series,
            "choices": choices,
            "selected": numbers,
            "nav": "experiments",
        },
    )


def _compared_trial(trials: list[Trial], best_value: float | None) -> int:
    """The trial a comparison charts: the one holding the experiment's best value (a sweep
    minimises; an API experiment may maximise), else the first."""
    told = [t for t in trials if t.state == RunState.COMPLETE and t.value is not None]
    if told and best_value is not None:
        return min(told, key=lambda t: (abs(t.value - best_value), t.number)).number
    return min((t.number for t in trials), default=0)


def _snapshot_texts(snapshot: Path | None) -> dict[str, str | None]:
    """Relative path -> text (None for binary/large files) of a code snapshot."""
    texts: dict[str, str | None] = {}
    if snapshot is None:
        return texts
    for path in sorted(snapshot.rglob("*")):
        rel = path.relative_to(snapshot)
        if any(p in files.HIDDEN_NAMES for p in rel.parts) or path.is_symlink():
            continue
        if not path.is_file():
            continue
        if path.stat().st_size > MAX_DIFF_FILE_BYTES:
            texts[rel.as_posix()] = None
            continue
        try:
            texts[rel.as_posix()] = files.read_text(path)
        except files.NotText:
            texts[rel.as_posix()] = None
    return texts


def code_diff(a: dict[str, str | None], b: dict[str, str | None], a_name: str, b_name: str):
    """Per-file unified diffs between two snapshots (as returned by ``_snapshot_texts``)."""
    result = []
    for rel in sorted(set(a) | set(b)):
        old, new = a.get(rel), b.get(rel)
        if rel in a and rel in b and old == new:
            continue
        status = "added" if rel not in a else "removed" if rel not in b else "changed"
        if (rel in a and old is None) or (rel in b and new is None):
            result.append({"path": rel, "status": status, "binary": True, "lines": []})
            continue
        lines = list(
            difflib.unified_diff(
                (old or "").splitlines(),
                (new or "").splitlines(),
                fromfile=f"{a_name}/{rel}" if rel in a else "/dev/null",
                tofile=f"{b_name}/{rel}" if rel in b else "/dev/null",
                lineterm="",
                n=3,
            )
        )
        rows = []
        for line in lines:
            if line.startswith(("+++", "---")):
                kind = "file"
            elif line.startswith("@@"):
                kind = "hunk"
            elif line.startswith("+"):
                kind = "add"
            elif line.startswith("-"):
                kind = "del"
            else:
                kind = "ctx"
            rows.append({"kind": kind, "text": line})
        result.append({"path": rel, "status": status, "binary": False, "lines": rows})
    return result


@login_required
def experiment_diff(request: HttpRequest, slug: str) -> HttpResponse:
    """Code diff between two experiments' ``code/`` snapshots (``?a=N&b=M``)."""
    project = _get_project_for_user(request, slug)
    a_num = _int_param(request, "a", None)
    b_num = _int_param(request, "b", None)
    choices = project.experiments.order_by("-number").values("number", "description")
    context = {"project": project, "choices": choices, "a": a_num, "b": b_num, "nav": "experiments"}
    if a_num is not None and b_num is not None:
        a = _get_experiment_for_user(request, project, a_num)
        b = _get_experiment_for_user(request, project, b_num)
        diffs = code_diff(
            _snapshot_texts(_snapshot_dir(a)), _snapshot_texts(_snapshot_dir(b)), a.name, b.name
        )
        context.update(
            {
                "exp_a": a,
                "exp_b": b,
                "diffs": diffs,
                "missing": [e.name for e in (a, b) if _snapshot_dir(e) is None],
            }
        )
    return render(request, "sweeps/diff.html", context)
