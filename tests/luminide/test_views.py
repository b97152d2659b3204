"""Workspace views: access (owner, collaborator, outsider), the file API, tokens, nodes."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from luminide.models import ApiToken, ComputeNode, Project
from tests import factories

pytestmark = pytest.mark.django_db

CONFIG = "lr: 0.05\nbatch_size: 32\n"
SWEEP = "parameters:\n  lr: {distribution: log_uniform, min: 0.0001, max: 0.1}\n"


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.LUMINIDE_DATA_DIR = tmp_path / "data"
    settings.LUMINIDE_DATA_DIR.mkdir()
    return settings.LUMINIDE_DATA_DIR


@pytest.fixture
def project(data_dir, owner, collaborator):
    project = factories.make_project(owner, "proj", template="", collaborators=[collaborator])
    code = project.code_dir
    (code / "pkg").mkdir(parents=True)
    (code / "config.yaml").write_text(CONFIG)
    (code / "sweep.yaml").write_text(SWEEP)
    (code / "train.py").write_text("print('hi')\n")
    (code / "pkg" / "util.py").write_text("X = 1\n")
    (project.root / "secret.txt").write_text("outside code/")
    return project


def client_for(client, user):
    client.force_login(user)
    return client


def save(client, project, path, content):
    return client.post(
        reverse("file_save", args=[project.slug]),
        data=json.dumps({"path": path, "content": content}),
        content_type="application/json",
    )


# ---------------------------------------------------------------- login and access


def test_pages_require_login(client, project):
    for url in (
        reverse("project_list"),
        reverse("project_ide", args=[project.slug]),
        reverse("file_tree", args=[project.slug]),
        reverse("nodes"),
        reverse("tokens"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_login_page_and_login(client, owner):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "owner", "password": "pw-owner"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302  # -> project list


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 200), ("collaborator", 200), ("outsider", 404)]
)
def test_project_access(client, project, owner, collaborator, outsider, who, status):
    user = {"owner": owner, "collaborator": collaborator, "outsider": outsider}[who]
    c = client_for(client, user)
    assert c.get(reverse("project_ide", args=[project.slug])).status_code == status
    assert c.get(reverse("file_tree", args=[project.slug])).status_code == status
    opened = c.get(reverse("file_open", args=[project.slug]), {"path": "config.yaml"})
    assert opened.status_code == status
    saved = save(c, project, "train.py", "print('changed')\n")
    assert saved.status_code == status
    expected = "print('changed')\n" if status == 200 else "print('hi')\n"
    assert (project.code_dir / "train.py").read_text() == expected
    deleted = c.post(
        reverse("file_delete", args=[project.slug]),
        data=json.dumps({"path": "train.py"}),
        content_type="application/json",
    )
    assert deleted.status_code == status
    assert (project.code_dir / "train.py").exists() is (status != 200)


def test_project_list_shows_only_visible_projects(client, project, outsider, collaborator):
    Project.objects.create(slug="other", name="Other", owner=outsider)
    page = client_for(client, collaborator).get(reverse("project_list")).content.decode()
    assert "proj" in page
    assert "other" not in page


def test_create_project_from_template(client, owner, data_dir, monkeypatch):
    calls = []

    def fake_create(user, slug, name, template):
        calls.append((user, slug, name, template))
        return Project.objects.create(slug=slug, name=name, owner=user, template=template)

    import luminide.workspace

    monkeypatch.setattr(luminide.workspace, "create_project", fake_create)
    c = client_for(client, owner)
    page = c.get(reverse("project_list")).content.decode()
    assert "image-classification" in page
    response = c.post(
        reverse("project_list"),
        {"slug": "new-one", "name": "New", "template": "image-classification"},
    )
    assert response.status_code == 302
    assert response.url == reverse("project_ide", args=["new-one"])
    assert calls == [(owner, "new-one", "New", "image-classification")]


def test_create_project_rejects_bad_slug_and_template(client, owner, project):
    c = client_for(client, owner)
    bad = c.post(reverse("project_list"), {"slug": "Bad Slug", "template": "image-classification"})
    assert bad.status_code == 400
    assert "lowercase" in bad.content.decode()
    taken = c.post(reverse("project_list"), {"slug": "proj", "template": "image-classification"})
    assert "already exists" in taken.content.decode()
    unknown = c.post(reverse("project_list"), {"slug": "fresh", "template": "nope"})
    assert unknown.status_code == 400
    long_name = c.post(
        reverse("project_list"),
        {"slug": "fresh", "name": "n" * 201, "template": "image-classification"},
    )
    assert long_name.status_code == 400
    assert "At most 200 characters (this one has 201)" in long_name.content.decode()
    long_slug = c.post(
        reverse("project_list"), {"slug": "s" * 64, "template": "tabular-classification"}
    )
    assert long_slug.status_code == 400
    assert "At most 63 characters (this one has 64)" in long_slug.content.decode()
    assert not Project.objects.filter(slug__in=["fresh", "s" * 64]).exists()


def test_new_project_slug_rule_is_shown_and_named_in_errors(client, owner, project):
    c = client_for(client, owner)
    rule = "lowercase letters a-z, digits 0-9 and dashes, starting with a letter or a digit"
    page = c.get(reverse("project_list")).content.decode()
    assert f'title="Slug: {rule}, at most 63 characters"' in page  # the browser's bubble
    assert f"The project's folder and URL: {rule}" in page  # visible under the field
    errors = {
        "My Project!": f"Slug &#x27;My Project!&#x27; (not allowed: &#x27; &#x27;, "
        f"&#x27;!&#x27;, &#x27;M&#x27;, &#x27;P&#x27;): use {rule}",
        "-abc": f"Slug &#x27;-abc&#x27; (it starts with a dash): use {rule}",
        "café": "(not allowed: &#x27;é&#x27;)",
        "": f"A slug is required: {rule}",
    }
    for slug, message in errors.items():
        response = c.post(reverse("project_list"), {"slug": slug, "template": "empty"})
        assert response.status_code == 400
        assert message in response.content.decode()
    assert list(Project.objects.values_list("slug", flat=True)) == ["proj"]


def test_empty_project_then_train_names_the_missing_script(client, owner, data_dir):
    from sweeps.models import Experiment

    c = client_for(client, owner)
    assert "Empty project" in c.get(reverse("project_list")).content.decode()
    created = c.post(reverse("project_list"), {"slug": "blank", "template": "empty"})
    assert created.status_code == 302 and created.url == reverse("project_ide", args=["blank"])
    project = Project.objects.get(slug="blank")
    assert project.template == "" and project.name == "blank"
    assert project.code_dir.is_dir() and not any(project.code_dir.iterdir())
    assert project.input_dir.is_dir() and project.output_dir.is_dir()
    assert c.get(reverse("file_tree", args=["blank"])).json() == {"tree": []}
    page = c.post(reverse("experiment_start", args=["blank"]), follow=True)
    assert page.redirect_chain == [(reverse("project_ide", args=["blank"]), 302)]
    assert (
        "Could not start: full.sh: not found in the project&#x27;s code/" in page.content.decode()
    )
    assert not Experiment.objects.filter(project=project).exists()


# ---------------------------------------------------------------- file API


def test_tree_lists_code_only(client, owner, project):
    tree = client_for(client, owner).get(reverse("file_tree", args=[project.slug])).json()["tree"]
    names = [e["name"] for e in tree]
    assert names == ["pkg", "config.yaml", "sweep.yaml", "train.py"]  # folders first
    assert tree[0]["children"][0]["path"] == "pkg/util.py"
    assert "secret.txt" not in json.dumps(tree)


def test_open_and_save_text_file(client, owner, project):
    c = client_for(client, owner)
    opened = c.get(reverse("file_open", args=[project.slug]), {"path": "pkg/util.py"}).json()
    assert opened.pop("version")  # a fingerprint the save sends back (conflict test below)
    assert opened == {"path": "pkg/util.py", "content": "X = 1\n", "mode": "python"}
    assert save(c, project, "pkg/util.py", "X = 2\n").json()["ok"] is True
    assert (project.code_dir / "pkg" / "util.py").read_text() == "X = 2\n"
    assert save(c, project, "notes/new.txt", "hello").status_code == 200
    assert (project.code_dir / "notes" / "new.txt").read_text() == "hello"


def test_open_refuses_binary(client, owner, project):
    (project.code_dir / "blob.bin").write_bytes(b"\x00\x01\x02")
    response = client_for(client, owner).get(
        reverse("file_open", args=[project.slug]), {"path": "blob.bin"}
    )
    assert response.status_code == 400
    assert "binary" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "pkg/../../secret.txt",
        "..",
        "/etc/passwd",
        "~/x",
        "",
        "pkg\\..\\..\\secret.txt",
    ],
)
def test_editor_refuses_paths_outside_code(client, owner, project, path):
    c = client_for(client, owner)
    opened = c.get(reverse("file_open", args=[project.slug]), {"path": path})
    assert opened.status_code == 400
    assert "outside code/" not in opened.content.decode()
    saved = save(c, project, path, "pwned")
    assert saved.status_code == 400
    assert (project.root / "secret.txt").read_text() == "outside code/"


def test_editor_refuses_symlinks(client, owner, project, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    os.symlink(outside, project.code_dir / "link.txt")
    os.symlink(tmp_path, project.code_dir / "linkdir")
    c = client_for(client, owner)
    for path in ("link.txt", "linkdir/outside.txt", "linkdir/new.txt"):
        assert c.get(reverse("file_open", args=[project.slug]), {"path": path}).status_code == 400
        assert save(c, project, path, "pwned").status_code == 400
    assert outside.read_text() == "outside"
    assert not (tmp_path / "new.txt").exists()
    tree = c.get(reverse("file_tree", args=[project.slug])).json()["tree"]
    assert "link" not in json.dumps(tree)


@pytest.mark.parametrize(
    ("name", "content", "line", "needle"),
    [
        ("config.yaml", "lr: 0.05\nbatch_size: [32, 64\n", 3, "expected ',' or ']'"),
        ("config.yaml", "lr: 0.05\n  momentum: 0.9\n", 2, "mapping values are not allowed"),
        ("config.yaml", "lr: 0.05\nlr: 0.1\n", 2, "defined twice"),
        ("config.yaml", "- a\n- b\n", 1, "mapping"),
        ("sweep.yaml", "parameters:\n  lr: {distribution: bogus, min: 1, max: 2}\n", 2, "bogus"),
        ("sweep.yaml", "parameters: [\n", 2, ""),
    ],
)
def test_invalid_yaml_refused_with_line_file_unchanged(
    client, owner, project, name, content, line, needle
):
    before = (project.code_dir / name).read_text()
    response = save(client_for(client, owner), project, name, content)
    assert response.status_code == 400
    body = response.json()
    assert body["line"] == line
    assert f"line {line}" in body["error"]
    assert needle in body["error"]
    assert (project.code_dir / name).read_text() == before


def test_valid_yaml_saved(client, owner, project):
    c = client_for(client, owner)
    assert save(c, project, "config.yaml", "lr: 0.01\nbatch_size: 64\n").status_code == 200
    assert (project.code_dir / "config.yaml").read_text() == "lr: 0.01\nbatch_size: 64\n"
    # Other YAML files are ordinary text: saved as is.
    assert save(c, project, "other.yaml", "a: [").status_code == 200


def test_new_file_is_created_but_never_overwrites(client, owner, project):
    c = client_for(client, owner)
    url = reverse("file_save", args=[project.slug])

    def create(path):
        body = json.dumps({"path": path, "content": "", "create": True})
        return c.post(url, data=body, content_type="application/json")

    assert create("models/resnet.py").status_code == 200
    assert (project.code_dir / "models" / "resnet.py").read_text() == ""
    taken = create("train.py")
    assert taken.status_code == 400 and taken.json()["error"] == "train.py already exists"
    assert (project.code_dir / "train.py").read_text() == "print('hi')\n"
    assert create("../outside.py").status_code == 400
    assert create("./dot.py").json()["path"] == "dot.py"  # the name as the tree shows it
    # An empty sweep.yaml can be created again (it is checked when saved or used).
    (project.code_dir / "sweep.yaml").unlink(missing_ok=True)
    assert create("sweep.yaml").status_code == 200
    refused = {
        "trail/": "trail/: name a file, not a folder",
        "__pycache__/x.py": "__pycache__/x.py: the file tree does not show files in",
        "train.py/x.py": "train.py/x.py: train.py is a file, not a folder",
    }
    for path, message in refused.items():
        response = create(path)
        assert response.status_code == 400 and response.json()["error"].startswith(message)
    assert not (project.code_dir / "trail").exists()
    assert not (project.code_dir / "__pycache__").exists()


def test_delete_file_removes_one_file_only(client, owner, project):
    c = client_for(client, owner)
    url = reverse("file_delete", args=[project.slug])
    (project.code_dir / "pkg").mkdir(exist_ok=True)
    (project.code_dir / "pkg" / "extra.py").write_text("x = 1\n")

    def delete(path):
        return c.post(url, data=json.dumps({"path": path}), content_type="application/json")

    assert delete("pkg/extra.py").status_code == 200
    assert not (project.code_dir / "pkg" / "extra.py").exists()
    assert (project.code_dir / "pkg" / "util.py").is_file()  # pkg is not empty: it stays
    # The last file of a folder takes its emptied folders with it, not code/ itself.
    (project.code_dir / "notes" / "old").mkdir(parents=True)
    (project.code_dir / "notes" / "old" / "plan.md").write_text("x\n")
    assert delete("notes/old/plan.md").status_code == 200
    assert not (project.code_dir / "notes").exists()
    assert project.code_dir.is_dir()
    assert delete("pkg").json()["error"] == "pkg is not a file"
    assert delete("missing.py").status_code == 400
    assert delete("../secret.txt").status_code == 400
    assert (project.code_dir / "train.py").is_file()


def test_save_never_replaces_a_change_made_since_the_open(client, owner, project):
    """Two tabs, or Use tuned config while the IDE has config.yaml open: the later save is
    refused (409) instead of silently dropping the other change, until sent without the
    version it opened."""
    c = client_for(client, owner)
    url = reverse("file_save", args=[project.slug])
    opened = c.get(reverse("file_open", args=[project.slug]), {"path": "train.py"}).json()

    def save_from(version, content):
        body = {"path": "train.py", "content": content, "base_version": version}
        return c.post(url, data=json.dumps(body), content_type="application/json")

    first = save_from(opened["version"], "print('tab one')\n")
    assert first.status_code == 200 and first.json()["version"] != opened["version"]
    stale = save_from(opened["version"], "print('tab two')\n")  # opened before tab one saved
    assert stale.status_code == 409
    assert stale.json()["error"].startswith("train.py changed on disk since you opened it")
    assert (project.code_dir / "train.py").read_text() == "print('tab one')\n"
    # The version the last save returned saves again.
    assert save_from(first.json()["version"], "print('tab one, v2')\n").status_code == 200

    (project.code_dir / "train.py").unlink()  # deleted in another tab
    gone = save_from(opened["version"], "print('tab two')\n")
    assert gone.status_code == 409 and gone.json()["deleted"] is True
    assert "train.py was deleted since you opened it" in gone.json()["error"]
    assert not (project.code_dir / "train.py").exists()
    # Saving on purpose, without the version, writes it back.
    assert save(c, project, "train.py", "print('tab two')\n").status_code == 200
    assert (project.code_dir / "train.py").read_text() == "print('tab two')\n"


def test_save_rejects_malformed_body(client, owner, project):
    c = client_for(client, owner)
    url = reverse("file_save", args=[project.slug])
    assert c.post(url, data="nope", content_type="application/json").status_code == 400
    assert (
        c.post(url, data=json.dumps({"path": "x"}), content_type="application/json").status_code
        == 400
    )
    assert save(c, project, "pkg", "folder").status_code == 400
    assert save(c, project, "train.py/inside.txt", "x").status_code == 400
    # A name longer than the file system allows, and text JSON can hold but UTF-8 cannot.
    too_long = save(c, project, "a" * 300 + ".py", "x")
    assert too_long.status_code == 400 and "too long" in too_long.json()["error"]
    lone_surrogate = c.post(
        url, data='{"path": "notes.txt", "content": "\\ud800"}', content_type="application/json"
    )
    assert lone_surrogate.status_code == 400 and "UTF-8" in lone_surrogate.json()["error"]
    assert not (project.code_dir / "notes.txt").exists()
    assert (project.code_dir / "train.py").read_text() == "print('hi')\n"


def rename(client, project, path, new_path):
    return client.post(
        reverse("file_rename", args=[project.slug]),
        data=json.dumps({"path": path, "new_path": new_path}),
        content_type="application/json",
    )


def test_rename_moves_a_file_and_removes_the_folder_it_empties(client, owner, project):
    c = client_for(client, owner)
    moved = rename(c, project, "pkg/util.py", "models/net.py")
    assert moved.status_code == 200
    assert moved.json() == {
        "ok": True,
        "old_path": "pkg/util.py",
        "path": "models/net.py",
        "mode": "python",
    }
    assert (project.code_dir / "models" / "net.py").read_text() == "X = 1\n"
    assert not (project.code_dir / "pkg").exists()  # its last file left: gone, like Delete
    renamed = rename(c, project, "train.py", " ./main.sh ").json()
    assert renamed["path"] == "main.sh" and renamed["mode"] == "shell"
    assert (project.code_dir / "main.sh").read_text() == "print('hi')\n"


def test_rename_refuses_what_new_file_refuses_and_keeps_every_file(client, owner, project):
    c = client_for(client, owner)
    before = {p: p.read_bytes() for p in project.code_dir.rglob("*") if p.is_file()}
    refused = {
        ("train.py", "config.yaml"): "Not renamed: config.yaml already exists",
        ("train.py", "train.py"): "Not renamed: train.py already exists",
        ("train.py", "pkg"): "Not renamed: pkg already exists",
        ("train.py", "../secret.py"): "Not renamed: ../secret.py: '..' is not allowed",
        ("train.py", "/tmp/x.py"): "Not renamed: /tmp/x.py: absolute paths are not allowed",
        ("train.py", "sub/"): "Not renamed: sub/: name a file, not a folder",
        ("train.py", ""): "Not renamed: a new name is required (e.g. model.py or sub/model.py)",
        ("train.py", "__pycache__/t.py"): "Not renamed: __pycache__/t.py: the file tree does",
        ("train.py", "config.yaml/t.py"): "Not renamed: config.yaml/t.py: config.yaml is a file",
        ("missing.py", "new.py"): "missing.py: no such file",
        ("../secret.txt", "in.txt"): "../secret.txt: '..' is not allowed",
        ("pkg", "pkg2"): "pkg is not a file",
    }
    for (path, new_path), message in refused.items():
        response = rename(c, project, path, new_path)
        assert response.status_code == 400, (path, new_path)
        assert response.json()["error"].startswith(message), response.json()["error"]
    bad_body = c.post(
        reverse("file_rename", args=[project.slug]),
        data=json.dumps({"path": "train.py"}),
        content_type="application/json",
    )
    assert bad_body.json()["error"] == "expected JSON {path, new_path}"
    after = {p: p.read_bytes() for p in project.code_dir.rglob("*") if p.is_file()}
    assert after == before
    assert (project.root / "secret.txt").read_text() == "outside code/"


def test_rename_to_a_checked_yaml_name_validates_it(client, owner, project):
    c = client_for(client, owner)
    (project.code_dir / "config.yaml").unlink()
    (project.code_dir / "old.yaml").write_text("lr: 0.1\nlr: 0.2\n")
    refused = rename(c, project, "old.yaml", "config.yaml")
    assert refused.status_code == 400
    assert refused.json()["error"] == "Not renamed: config.yaml: line 2: 'lr' is defined twice"
    assert (project.code_dir / "old.yaml").is_file()
    (project.code_dir / "old.yaml").write_text(CONFIG)
    assert rename(c, project, "old.yaml", "config.yaml").status_code == 200
    assert (project.code_dir / "config.yaml").read_text() == CONFIG


def test_rename_and_upload_follow_project_access(client, project, collaborator, outsider):
    assert rename(client_for(client, outsider), project, "train.py", "x.py").status_code == 404
    assert upload(client, project, [file("x.py")]).status_code == 404
    assert rename(client_for(client, collaborator), project, "train.py", "x.py").status_code == 200
    assert (project.code_dir / "x.py").is_file()


def file(name, content=b"print(1)\n"):
    return SimpleUploadedFile(name, content)


def upload(client, project, uploads, folder=""):
    return client.post(
        reverse("file_upload", args=[project.slug]), {"folder": folder, "files": uploads}
    )


def test_upload_stores_files_in_the_folder_picked(client, owner, project):
    c = client_for(client, owner)
    response = upload(c, project, [file("model.py"), file("weights.bin", b"\x00\x01")])
    assert response.status_code == 200
    assert response.json() == {"ok": True, "paths": ["model.py", "weights.bin"]}
    assert (project.code_dir / "weights.bin").read_bytes() == b"\x00\x01"
    into = upload(c, project, [file("aug.py")], folder="pkg/")
    assert into.json()["paths"] == ["pkg/aug.py"]
    assert (project.code_dir / "pkg" / "aug.py").read_text() == "print(1)\n"
    assert upload(c, project, [file("sweep.yaml", SWEEP.encode())], "pkg").status_code == 200


def test_upload_refuses_by_name_and_stores_nothing(client, owner, project, monkeypatch):
    c = client_for(client, owner)
    monkeypatch.setattr("luminide.files.MAX_UPLOAD_BYTES", 1024 * 1024)
    before = {p: p.read_bytes() for p in project.code_dir.rglob("*") if p.is_file()}
    taken = upload(c, project, [file("new.py"), file("train.py", b"replaced")])
    assert taken.status_code == 400
    assert taken.json()["errors"] == ["train.py already exists"]
    assert taken.json()["error"] == "Nothing uploaded. train.py already exists"
    big = upload(c, project, [file("big.csv", b"x" * (1024 * 1024 + 1)), file("ok.py")])
    assert big.json()["errors"] == [
        "big.csv: 1.0 MB is over the 1 MB limit per file (data sets go in the project's "
        "input/ folder)"
    ]
    bad_yaml = upload(c, project, [file("sweep.yaml", b"parameters: [\n")], folder="pkg")
    assert bad_yaml.json()["errors"][0].startswith("pkg/sweep.yaml: line 2")
    latin1 = upload(c, project, [file("config.yaml", b"lr: \xe9\n")], folder="pkg")
    assert latin1.json()["errors"] == ["pkg/config.yaml: not a UTF-8 text file"]
    twice = upload(c, project, [file("a.py"), file("a.py")])
    assert twice.json()["errors"] == ["a.py: chosen twice"]
    hidden = upload(c, project, [file("x.py")], folder="__pycache__")
    assert hidden.json()["error"] == "Nothing uploaded: folder __pycache__: no such folder in code/"
    (project.code_dir / "__pycache__").mkdir()  # there, but the tree does not show it
    hidden = upload(c, project, [file("x.py")], folder="__pycache__")
    assert hidden.json()["errors"][0].startswith("__pycache__/x.py: the file tree does not show")
    (project.code_dir / "__pycache__").rmdir()
    # A browser sends only the base name ("../x.py" arrives as "x.py"); a crafted one too.
    assert upload(c, project, [file("../escape.py")]).json()["paths"] == ["escape.py"]
    (project.code_dir / "escape.py").unlink()
    for folder, message in {
        "../": "folder ..: '..' is not allowed in paths",
        "train.py": "folder train.py: no such folder in code/",
        "nope": "folder nope: no such folder in code/",
    }.items():
        response = upload(c, project, [file("y.py")], folder=folder)
        assert response.status_code == 400
        assert response.json()["error"] == f"Nothing uploaded: {message}"
    assert upload(c, project, []).json()["error"] == "Choose one or more files to upload."
    after = {p: p.read_bytes() for p in project.code_dir.rglob("*") if p.is_file()}
    assert after == before
    assert not (project.root / "escape.py").exists()


def test_upload_that_cannot_be_written_leaves_no_file(client, owner, project, monkeypatch):
    from luminide import files

    real = files.write_atomic

    def full_disk(path, chunks, **kwargs):
        if path.name == "second.py":
            raise OSError(28, "No space left on device")
        real(path, chunks, **kwargs)

    monkeypatch.setattr(files, "write_atomic", full_disk)
    response = upload(client_for(client, owner), project, [file("first.py"), file("second.py")])
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Nothing uploaded: cannot write second.py: No space left on device"
    )
    assert not (project.code_dir / "first.py").exists()


# ---------------------------------------------------------------- nodes, tokens, plotly, admin


def test_nodes_page(client, owner):
    ComputeNode.objects.create(hostname="gpu-box-1", device="NVIDIA A100", device_memory_mb=40960)
    page = client_for(client, owner).get(reverse("nodes")).content.decode()
    assert "gpu-box-1" in page
    assert "NVIDIA A100" in page
    assert "just now" in page  # a heartbeat seconds old, not "0 minutes ago"
    ComputeNode.objects.filter(hostname="gpu-box-1").update(
        last_heartbeat=timezone.now() - timedelta(minutes=3)
    )
    assert "3\xa0minutes ago" in client_for(client, owner).get(reverse("nodes")).content.decode()
    # A worker stopped an hour ago: listed after the live ones, with no "Up since".
    ComputeNode.objects.filter(hostname="gpu-box-1").update(last_heartbeat=timezone.now())
    ComputeNode.objects.create(
        hostname="a-old-box",
        device="CPU",
        state=ComputeNode.State.OFFLINE,
        last_heartbeat=timezone.now() - timedelta(hours=1),
    )
    page = client_for(client, owner).get(reverse("nodes")).content.decode()
    assert page.index("gpu-box-1") < page.index("a-old-box")
    old_row = page[page.index("a-old-box") :].split("</tr>")[0]
    assert '<td class="muted">—</td>' in old_row


def test_tokens_create_shows_raw_once_and_revoke(client, owner, outsider):
    c = client_for(client, owner)
    created = c.post(reverse("tokens"), {"name": "laptop"})
    token = ApiToken.objects.get(user=owner)
    page = created.content.decode()
    raw = page.split('id="raw-token">')[1].split("<")[0]
    assert ApiToken.objects.authenticate(raw) == token
    # The client snippet's URL works as is: the sigopt client adds /v1 itself.
    assert 'conn.set_api_url("http://testserver")' in page
    assert f'<a href="{reverse("api-openapi")}">OpenAPI description</a>' in page
    assert raw not in c.get(reverse("tokens")).content.decode()  # shown once
    # Another user cannot revoke it.
    other = client.__class__()
    other.force_login(outsider)
    assert other.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    assert c.post(reverse("token_revoke", args=[token.pk])).status_code == 302
    assert ApiToken.objects.authenticate(raw) is None


def test_a_fragment_refresh_leaves_flash_messages_for_the_next_page(client, owner):
    """The lists re-fetch their page every few seconds (static/js/fragments.js): a fetch that
    lands between a redirect and the page it leads to must not eat that page's message."""
    c = client_for(client, owner)
    token, _raw = ApiToken.issue(owner, "laptop")
    c.post(reverse("token_revoke", args=[token.pk]))
    fragment = c.get(reverse("project_list"), headers={"x-luminide-fragment": "1"})
    assert "revoked" not in fragment.content.decode()
    assert "revoked" in c.get(reverse("tokens")).content.decode()


def test_plotly_served_from_package(client):
    response = client.get(reverse("plotly_js"))
    assert response.status_code == 200
    head = b"".join(response.streaming_content)[:2000]
    assert b"plotly" in head.lower()


def test_admin_is_staff_only(client, owner):
    c = client_for(client, owner)
    assert c.get("/admin/").status_code == 302
    staff = User.objects.create_user("staff", password="x", is_staff=True, is_superuser=True)
    c.force_login(staff)
    for url in (
        "/admin/",
        "/admin/auth/user/",
        "/admin/luminide/project/",
        "/admin/luminide/computenode/",
        "/admin/sweeps/experiment/",
        "/admin/sweeps/trial/",
    ):
        assert c.get(url).status_code == 200, url
