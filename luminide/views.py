"""Workspace pages: projects, the IDE (file tree, editor, file API), nodes, API tokens.

Views are thin. Every view that touches a project goes through ``_get_project_for_user``,
which answers 404 for projects the user neither owns nor collaborates on.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path

import plotly
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from luminide import files
from luminide.models import ApiToken, ComputeNode, Project

SLUG_MAX_LENGTH = 63
SLUG_RE = re.compile(rf"^[a-z0-9][a-z0-9-]{{0,{SLUG_MAX_LENGTH - 1}}}$")
# Shown under the field, as its title (the browser's own "match the format" bubble) and in
# the server's error, so the three never disagree.
SLUG_RULE = (
    f"lowercase letters a-z, digits 0-9 and dashes, starting with a letter or a digit, "
    f"at most {SLUG_MAX_LENGTH} characters"
)
EMPTY_PROJECT = "empty"  # the New project choice with no code template
EDITOR_MODES = {
    ".py": "python",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".sh": "shell",
}


def _get_project_for_user(request: HttpRequest, slug: str) -> Project:
    """The project ``slug`` if the user owns it or collaborates on it, else 404."""
    return get_object_or_404(Project.objects.for_user(request.user), slug=slug)


def code_templates() -> list[dict]:
    """Code templates shipped in ``luminide/code_templates/``: name and a one-line summary
    (first line of the template's README, else of its ``train.py`` docstring)."""
    from luminide.workspace import TEMPLATES_DIR, list_templates

    found = []
    for name in list_templates():
        folder = TEMPLATES_DIR / name
        summary = ""
        for candidate in ("README.md", "README.txt", "README", "train.py"):
            path = folder / candidate
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if candidate == "train.py":
                try:
                    text = ast.get_docstring(ast.parse(text)) or ""
                except SyntaxError:
                    text = ""
            for line in text.splitlines():
                # Shown as plain text: drop Markdown/reST inline-code marks.
                line = line.strip().lstrip("#").strip().replace("`", "")
                if line:
                    summary = line
                    break
            if summary:
                break
        found.append({"name": name, "summary": summary})
    return found


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("project_list")


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    """Projects the user can open, and the form to create one from a code template."""
    templates = code_templates()
    form = {"slug": "", "name": "", "template": templates[0]["name"] if templates else ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {key: request.POST.get(key, "").strip() for key in ("slug", "name", "template")}
        errors = _new_project_errors(form, {t["name"] for t in templates})
        if not errors:
            from luminide.workspace import create_project

            template = "" if form["template"] == EMPTY_PROJECT else form["template"]
            try:
                project = create_project(
                    request.user, form["slug"], form["name"] or form["slug"], template
                )
            except ValueError as exc:
                field, _, message = str(exc).partition(": ")
                errors[field if field in ("slug", "template") else "slug"] = message or str(exc)
            else:
                messages.success(request, f"Project {project.slug} created.")
                return redirect("project_ide", slug=project.slug)
    projects = (
        Project.objects.for_user(request.user)
        .select_related("owner")
        .annotate(
            n_experiments=Count("experiments", distinct=True),
            n_running=Count(
                "experiments",
                filter=Q(experiments__state__in=["queued", "running"]),
                distinct=True,
            ),
        )
    )
    return render(
        request,
        "luminide/project_list.html",
        {
            "projects": projects,
            "templates": templates,
            "form": form,
            "errors": errors,
            "slug_rule": SLUG_RULE,
            "empty_project": EMPTY_PROJECT,
        },
        status=400 if errors else 200,
    )


def _new_project_errors(form: dict[str, str], template_names: set[str]) -> dict[str, str]:
    """Why the New project form cannot create a project, by field (empty when it can)."""
    errors: dict[str, str] = {}
    slug = form["slug"]
    if not slug:
        errors["slug"] = f"A slug is required: {SLUG_RULE}."
    elif len(slug) > SLUG_MAX_LENGTH:
        errors["slug"] = f"At most {SLUG_MAX_LENGTH} characters (this one has {len(slug)})."
    elif not SLUG_RE.match(slug):
        bad = sorted(
            {c for c in slug if not (c.isascii() and (c.islower() or c.isdigit()))} - {"-"}
        )
        why = f"not allowed: {', '.join(repr(c) for c in bad)}" if bad else "it starts with a dash"
        errors["slug"] = f"Slug {slug!r} ({why}): use {SLUG_RULE}."
    elif Project.objects.filter(slug=slug).exists():
        errors["slug"] = "A project with this slug already exists."
    name_limit = Project._meta.get_field("name").max_length
    if len(form["name"]) > name_limit:
        errors["name"] = f"At most {name_limit} characters (this one has {len(form['name'])})."
    if form["template"] not in template_names | {EMPTY_PROJECT}:
        errors["template"] = "Choose one of the code templates or an empty project."
    return errors


@login_required
def project_ide(request: HttpRequest, slug: str) -> HttpResponse:
    """The IDE page: file tree, editor, Run Experiment panel."""
    project = _get_project_for_user(request, slug)
    experiments = list(project.experiments.select_related("project")[:8])
    return render(
        request,
        "luminide/ide.html",
        {
            "project": project,
            "experiments": experiments,
            "nav": "projects",
            "max_upload_bytes": files.MAX_UPLOAD_BYTES,
            "max_upload_mb": files.MAX_UPLOAD_BYTES // (1024 * 1024),
            "max_upload_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
        },
    )


@login_required
@require_GET
def file_tree(request: HttpRequest, slug: str) -> JsonResponse:
    project = _get_project_for_user(request, slug)
    return JsonResponse({"tree": files.tree(project.code_dir)})


@login_required
@require_GET
def file_open(request: HttpRequest, slug: str) -> JsonResponse:
    project = _get_project_for_user(request, slug)
    rel = request.GET.get("path", "")
    try:
        path = files.resolve_inside(project.code_dir, rel)
        content = files.read_text(path)
    except (files.UnsafePath, files.NotText) as exc:
        return JsonResponse({"error": str(exc), "path": rel}, status=400)
    return JsonResponse(
        {
            "path": rel,
            "content": content,
            "mode": EDITOR_MODES.get(path.suffix.lower(), "text"),
            "version": files.version(path),
        }
    )


@login_required
@require_POST
def file_save(request: HttpRequest, slug: str) -> JsonResponse:
    """Save a text file in ``code/`` (``create``: a new one, refused if it exists); YAML
    configs are validated first and refused whole. With ``base_version`` (from the open), a
    file changed or deleted on disk since is not replaced: 409, until saved without it."""
    project = _get_project_for_user(request, slug)
    try:
        body = json.loads(request.body)
        rel = str(body["path"])
        content = body["content"]
        if not isinstance(content, str):
            raise TypeError
        size = len(content.encode("utf-8"))  # a lone surrogate ("\ud800") cannot be saved
    except (ValueError, KeyError, TypeError):  # UnicodeEncodeError is a ValueError
        return JsonResponse({"error": "expected JSON {path, content} of UTF-8 text"}, status=400)
    if size > files.MAX_EDIT_BYTES:
        return JsonResponse({"error": "file is too large for the editor"}, status=400)
    try:
        path = files.resolve_inside(project.code_dir, rel, must_exist=False)
    except files.UnsafePath as exc:
        return JsonResponse({"error": str(exc), "path": rel}, status=400)
    if path.is_dir():
        return JsonResponse({"error": "is a folder", "path": rel}, status=400)
    create = bool(body.get("create"))
    if create:  # New file: never over a file, never where the file tree cannot show it
        problem = _new_file_problem(rel, path, project.code_dir.resolve())
        if problem:
            return JsonResponse({"error": problem, "path": rel}, status=400)
    base_version = body.get("base_version")
    if base_version is not None and files.version(path) != base_version:
        changed = "was deleted" if not path.exists() else "changed on disk"
        return JsonResponse(
            {
                "error": f"{rel} {changed} since you opened it (another tab, Use tuned config "
                "or a script). Not saved.",
                "path": rel,
                "conflict": True,
                "deleted": not path.exists(),
            },
            status=409,
        )
    if path.name in files.YAML_VALIDATED and not (create and content == ""):
        problem = files.validate_yaml(path.name, content)
        if problem is not None:
            return JsonResponse(
                {"error": f"{path.name} not saved: {problem}", "path": rel, **problem.as_dict()},
                status=400,
            )
    try:
        files.write_text_atomic(path, content)
    except OSError as exc:  # e.g. a parent "folder" that is a file
        return JsonResponse(
            {"error": f"cannot write {rel}: {exc.strerror}", "path": rel}, status=400
        )
    rel = path.relative_to(project.code_dir.resolve()).as_posix()  # "./a.py" is "a.py"
    return JsonResponse(
        {"ok": True, "path": rel, "size": path.stat().st_size, "version": files.version(path)}
    )


def _new_file_problem(rel: str, path: Path, code_dir: Path) -> str | None:
    """Why ``rel`` cannot be a new file (None when it can)."""
    if rel.endswith("/"):
        return f"{rel}: name a file, not a folder (e.g. {rel}model.py)"
    if path.exists():
        return f"{rel} already exists"
    parts = path.relative_to(code_dir).parts
    if any(part in files.HIDDEN_NAMES for part in parts):
        return (
            f"{rel}: the file tree does not show files in {', '.join(sorted(files.HIDDEN_NAMES))}"
        )
    for i in range(1, len(parts)):
        if code_dir.joinpath(*parts[:i]).is_file():
            return f"{rel}: {'/'.join(parts[:i])} is a file, not a folder"
    return None


@login_required
@require_POST
def file_delete(request: HttpRequest, slug: str) -> JsonResponse:
    """Delete one file in ``code/`` (not a folder), and the folders it leaves empty (the tree
    has no other way to remove them). Experiments keep their snapshot copy."""
    project = _get_project_for_user(request, slug)
    try:
        rel = str(json.loads(request.body)["path"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "expected JSON {path}"}, status=400)
    try:
        path = files.resolve_inside(project.code_dir, rel)
    except files.UnsafePath as exc:
        return JsonResponse({"error": str(exc), "path": rel}, status=400)
    if not path.is_file():
        return JsonResponse({"error": f"{rel} is not a file", "path": rel}, status=400)
    path.unlink()
    files.remove_empty_folders(path.parent, project.code_dir)
    return JsonResponse({"ok": True, "path": rel})


def _new_file_path(code_dir: Path, rel: str) -> Path:
    """Where the new file ``rel`` goes in ``code_dir``, by the New file rules.

    Raises:
        files.UnsafePath: with a message that starts with ``rel`` (or asks for one).
    """
    if not rel:
        raise files.UnsafePath("a new name is required (e.g. model.py or sub/model.py)")
    try:
        path = files.resolve_inside(code_dir, rel, must_exist=False)
    except files.UnsafePath as exc:
        raise files.UnsafePath(f"{rel}: {exc}") from None
    problem = _new_file_problem(rel, path, code_dir.resolve())
    if problem:
        raise files.UnsafePath(problem)
    return path


def _yaml_problem(rel: str, path: Path, read: Callable[[], bytes]) -> str | None:
    """Why the bytes ``read`` returns cannot become ``config.yaml`` / ``sweep.yaml`` at
    ``path`` (None when they can, or for any other name): the editor would not save them."""
    if path.name not in files.YAML_VALIDATED:
        return None
    try:
        problem = files.validate_yaml(path.name, read().decode("utf-8"))
    except UnicodeDecodeError:
        return f"{rel}: not a UTF-8 text file"
    return f"{rel}: {problem}" if problem else None


@login_required
@require_POST
def file_rename(request: HttpRequest, slug: str) -> JsonResponse:
    """Rename or move one file in ``code/`` to ``new_path``, by the New file rules (never over
    a file); folders it leaves empty go. Experiments keep their snapshot copy."""
    project = _get_project_for_user(request, slug)
    try:
        body = json.loads(request.body)
        rel, new_rel = str(body["path"]), str(body["new_path"]).strip()
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "expected JSON {path, new_path}"}, status=400)
    try:
        path = files.resolve_inside(project.code_dir, rel)
    except files.UnsafePath as exc:
        return JsonResponse({"error": f"{rel}: {exc}", "path": rel}, status=400)
    if not path.is_file():
        return JsonResponse({"error": f"{rel} is not a file", "path": rel}, status=400)
    try:
        target = _new_file_path(project.code_dir, new_rel)
    except files.UnsafePath as exc:
        return JsonResponse({"error": f"Not renamed: {exc}", "path": rel}, status=400)
    problem = _yaml_problem(new_rel, target, path.read_bytes)
    if problem:
        return JsonResponse({"error": f"Not renamed: {problem}", "path": rel}, status=400)
    existing = target.parent
    while not existing.exists():
        existing = existing.parent
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        files.move_no_replace(path, target)
    except OSError as exc:
        files.remove_empty_folders(target.parent, existing)  # only the folders made here
        why = f"{new_rel} already exists" if isinstance(exc, FileExistsError) else exc.strerror
        return JsonResponse({"error": f"Not renamed: {why}", "path": rel}, status=400)
    files.remove_empty_folders(path.parent, project.code_dir)
    new_rel = target.relative_to(project.code_dir.resolve()).as_posix()
    return JsonResponse(
        {
            "ok": True,
            "old_path": rel,
            "path": new_rel,
            "mode": EDITOR_MODES.get(target.suffix.lower(), "text"),
        }
    )


@login_required
@require_POST
def file_upload(request: HttpRequest, slug: str) -> JsonResponse:
    """Store the uploaded ``files`` in ``code/`` or its existing ``folder``: all of them or
    none. Each is refused, by name, for what New file refuses (an existing file included: it
    is never replaced), a size over ``MAX_UPLOAD_BYTES``, or YAML the editor would not save."""
    project = _get_project_for_user(request, slug)
    limit_mb = files.MAX_UPLOAD_BYTES // (1024 * 1024)
    # More files than DATA_UPLOAD_MAX_NUMBER_FILES are refused by Django's CSRF check before
    # this view runs: ide.js refuses them before sending, naming the limit.
    uploads = request.FILES.getlist("files")
    folder = request.POST.get("folder", "").strip().strip("/")
    if not uploads:
        return JsonResponse({"error": "Choose one or more files to upload."}, status=400)
    if folder:
        try:
            if not files.resolve_inside(project.code_dir, folder, must_exist=False).is_dir():
                raise files.UnsafePath("no such folder in code/")
        except files.UnsafePath as exc:
            return JsonResponse({"error": f"Nothing uploaded: folder {folder}: {exc}"}, status=400)
    errors: list[str] = []
    targets: list[tuple[Path, str, UploadedFile]] = []
    for upload in uploads:
        rel = f"{folder}/{upload.name}" if folder else str(upload.name)
        if upload.size is not None and upload.size > files.MAX_UPLOAD_BYTES:
            size_mb = upload.size / (1024 * 1024)
            errors.append(
                f"{rel}: {size_mb:.1f} MB is over the {limit_mb} MB limit per file "
                "(data sets go in the project's input/ folder)"
            )
            continue
        try:
            path = _new_file_path(project.code_dir, rel)
        except files.UnsafePath as exc:
            errors.append(str(exc))
            continue
        if any(path == other for other, _, _ in targets):
            errors.append(f"{rel}: chosen twice")
            continue
        problem = _yaml_problem(rel, path, upload.read)
        if problem:
            errors.append(problem)
            continue
        targets.append((path, rel, upload))
    if errors:
        return JsonResponse(
            {"error": "Nothing uploaded. " + "; ".join(errors), "errors": errors}, status=400
        )
    written: list[Path] = []
    for path, rel, upload in targets:
        try:
            files.write_atomic(path, upload.chunks(), replace=False)
        except OSError as exc:  # the disk is full, a file made meanwhile: none of them stays
            for done in written:
                done.unlink(missing_ok=True)
            why = "it already exists" if isinstance(exc, FileExistsError) else exc.strerror
            return JsonResponse(
                {"error": f"Nothing uploaded: cannot write {rel}: {why}"}, status=400
            )
        written.append(path)
    return JsonResponse({"ok": True, "paths": [rel for _, rel, _ in targets]})


@login_required
def nodes(request: HttpRequest) -> HttpResponse:
    """Compute nodes (Celery workers on the gpu queue) and what each is running."""
    node_list = list(ComputeNode.objects.all())
    from sweeps.models import Trial

    running = (
        Trial.objects.filter(state="running", node__isnull=False)
        .select_related("experiment__project")
        .order_by("-started_at")
    )
    visible = set(Project.objects.for_user(request.user).values_list("pk", flat=True))
    by_node: dict[int, list] = {}
    for trial in running:
        by_node.setdefault(trial.node_id, []).append(trial)
    timeout = _node_timeout_seconds()
    now = timezone.now()
    rows = []
    for node in node_list:
        age = (now - node.last_heartbeat).total_seconds()
        stale = node.state != ComputeNode.State.OFFLINE and age > timeout
        rows.append(
            {
                "node": node,
                "stale": stale,
                "gone": stale or node.state == ComputeNode.State.OFFLINE,
                "age": age,
                "trials": [
                    t for t in by_node.get(node.pk, []) if t.experiment.project_id in visible
                ],
            }
        )
    rows.sort(key=lambda row: row["gone"])  # the live ones first, by name (stable sort)
    return render(request, "luminide/nodes.html", {"rows": rows, "nav": "nodes"})


def _node_timeout_seconds() -> int:
    return int(getattr(settings, "LUMINIDE_NODE_TIMEOUT_SECONDS", 45))


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """The user's API tokens; a new token's raw value is shown once, right after creation."""
    raw = None
    if request.method == "POST":
        name = request.POST.get("name", "").strip()[:100]
        _token, raw = ApiToken.issue(request.user, name=name)
    token_list = ApiToken.objects.filter(user=request.user)
    return render(
        request,
        "luminide/tokens.html",
        {
            "tokens": token_list,
            "raw_token": raw,
            # The sigopt client adds /v1 itself ("/v1/v1/..." would be a 404).
            "api_url": request.build_absolute_uri("/").rstrip("/"),
            "nav": "tokens",
        },
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        messages.info(request, f"Token {token.prefix}… revoked.")
    return redirect("tokens")


@require_GET
def plotly_js(request: HttpRequest) -> FileResponse:
    """plotly.min.js straight from the installed ``plotly`` package (no copy, no CDN)."""
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise Http404("plotly.min.js is not installed")
    response = FileResponse(path.open("rb"), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=86400"
    return response
