"""The file tree's rename and upload, and an empty project, in Debian Chromium against the real
embedded stack.

Rename an open file with an unsaved edit into a new folder (the editor follows it, the edit
is kept and saves to the new name), upload two files into that folder (one already exists:
refused by name, nothing stored; then the other alone), then create an empty project, see
what Train needs, and upload it. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import login, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def text_file(name: str, text: str) -> dict:
    return {"name": name, "mimeType": "text/plain", "buffer": text.encode()}


def test_rename_upload_and_an_empty_project(app: Page, luminide_stack, screenshot_dir):
    code = luminide_stack.demo_project / "code"
    (code / "notes.py").write_text("# notes\n")
    login(app, luminide_stack.url)
    app.goto(luminide_stack.url + "/projects/demo/#notes.py")
    expect(app.locator("#editor-path")).to_have_text("notes.py")

    # Rename with an unsaved edit: the file moves, the editor follows with the edit kept.
    app.locator(".CodeMirror").click()
    app.keyboard.press("Control+End")
    app.keyboard.type("EDITED = True\n")
    expect(app.locator("#editor-dirty")).to_be_visible()
    app.once("dialog", lambda dialog: dialog.accept("scratch/renamed.py"))
    app.click("#rename-button")
    expect(app.locator("#editor-path")).to_have_text("scratch/renamed.py")
    expect(app.locator("#editor-status")).to_have_text("Renamed notes.py → scratch/renamed.py")
    expect(app.locator(".tree-row.active")).to_have_attribute("data-path", "scratch/renamed.py")
    expect(app.locator("#editor-dirty")).to_be_visible()
    assert not (code / "notes.py").exists()
    assert (code / "scratch" / "renamed.py").read_text() == "# notes\n"  # not saved yet
    shot(app, screenshot_dir, "files-01-renamed-unsaved")
    app.keyboard.press("Control+s")
    expect(app.locator("#editor-status")).to_contain_text("Saved")
    assert (code / "scratch" / "renamed.py").read_text() == "# notes\nEDITED = True\n"

    # A name that exists is refused, naming it; nothing moves.
    app.once("dialog", lambda dialog: dialog.accept("train.py"))
    app.click("#rename-button")
    expect(app.locator("#editor-error")).to_have_text("Not renamed: train.py already exists")
    assert (code / "scratch" / "renamed.py").is_file()

    # Upload into the folder picked: one of the two exists, so neither is stored.
    app.click("#upload-toggle")
    app.select_option("#upload-folder", "scratch")
    renamed = text_file("renamed.py", "# would replace\n")
    app.set_input_files("#upload-input", [text_file("helpers.py", "X = 1\n"), renamed])
    app.click("#upload-button")
    expect(app.locator("#upload-error")).to_contain_text("scratch/renamed.py already exists")
    assert not (code / "scratch" / "helpers.py").exists()
    assert (code / "scratch" / "renamed.py").read_text() == "# notes\nEDITED = True\n"
    shot(app, screenshot_dir, "files-02-upload-refused")
    app.set_input_files("#upload-input", [text_file("helpers.py", "X = 1\n")])
    app.click("#upload-button")
    expect(app.locator("#editor-status")).to_have_text("Uploaded scratch/helpers.py")
    expect(app.locator("#upload-error")).to_be_hidden()
    expect(app.locator("#editor-error")).to_be_hidden()  # the refused rename is old news
    expect(app.locator('.tree-row[data-path="scratch/helpers.py"]')).to_be_visible()
    assert (code / "scratch" / "helpers.py").read_text() == "X = 1\n"
    shot(app, screenshot_dir, "files-03-uploaded")
    shutil.rmtree(code / "scratch")

    # An empty project: the IDE says what Train needs; uploading it clears the note.
    app.goto(luminide_stack.url + "/projects/")
    expect(app.locator("#slug-hint")).to_contain_text("lowercase letters a-z")
    app.fill("#id_slug", "blank")
    app.check("input[name=template][value=empty]")
    shot(app, screenshot_dir, "files-04-new-empty-project")
    app.click("#create-project button[type=submit]")
    expect(app).to_have_url(re.compile(r"/projects/blank/"))
    expect(app.locator("#file-tree")).to_contain_text("code/ is empty")
    needs = app.locator("#train-needs")
    expect(needs).to_contain_text("Not in code/ yet: full.sh, config.yaml")
    expect(app.locator("#upload-form")).to_be_visible()  # open: an empty code/ starts here
    shot(app, screenshot_dir, "files-05-empty-project")
    app.set_input_files(
        "#upload-input",
        [text_file("full.sh", "python ../code/train.py\n"), text_file("config.yaml", "lr: 0.1\n")],
    )
    app.click("#upload-button")
    expect(app.locator("#editor-status")).to_have_text("Uploaded full.sh, config.yaml")
    expect(needs).to_be_hidden()
    blank = luminide_stack.data_dir / "projects" / "blank" / "code"
    assert (blank / "config.yaml").read_text() == "lr: 0.1\n"
    assert app.errors == []  # type: ignore[attr-defined]
