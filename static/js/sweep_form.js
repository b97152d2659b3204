/* The Sweep tab of the IDE's Run Experiment panel: start a (Fast) Sweep.
 *
 * Unsaved editor changes are saved first (through the IDE's own Save button, so its YAML
 * checks apply). The form posts with Accept: application/json: a refused sweep (invalid
 * sweep.yaml, counts out of range) shows the error naming file, line and parameter, and
 * the file opens in the editor with the line marked; nothing was started.
 */
(function () {
  "use strict";

  const form = document.getElementById("sweep-form");
  if (!form) return;
  const errorEl = document.getElementById("sweep-error");
  const button = document.getElementById("sweep-button");
  const label = button.textContent;

  if (/[?&]tab=sweep\b/.test(location.search)) {
    const tab = document.getElementById("sweep-tab");
    if (tab) tab.click();
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Save the open file if it has unsaved changes; false if the save was refused. */
  async function saveEditor() {
    const dirty = document.getElementById("editor-dirty");
    const save = document.getElementById("save-button");
    if (!dirty || dirty.hidden || !save) return true;
    // An error shown by an earlier save is not this save's answer: wait for a fresh one.
    const shown = document.getElementById("editor-error");
    if (shown) shown.hidden = true;
    save.click();
    for (let i = 0; i < 100; i++) {
      await sleep(50);
      if (dirty.hidden) return true;
      const err = document.getElementById("editor-error");
      if (err && !err.hidden) return false;
    }
    return false;
  }

  function showError(data) {
    errorEl.hidden = false;
    errorEl.textContent = data.error || "The sweep could not start.";
    if (data.file && data.line) {
      const link = document.createElement("a");
      link.href = "#" + encodeURIComponent(data.file);
      link.textContent = " → open " + data.file + " at line " + data.line;
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        openAtLine(data.file, data.line);
      });
      errorEl.append(document.createElement("br"), link);
      openAtLine(data.file, data.line);
    }
  }

  /** Open `path` in the IDE editor and mark `line` (until the next edit). */
  async function openAtLine(path, line) {
    const row = document.querySelector('#file-tree .tree-row[data-path="' + CSS.escape(path) + '"]');
    const editor = window.luminideEditor;
    if (!row || !editor) return;
    const pathEl = document.getElementById("editor-path");
    if (pathEl.textContent !== path) row.click();
    for (let i = 0; i < 60 && pathEl.textContent !== path; i++) await sleep(50);
    if (pathEl.textContent !== path) return;
    const handle = editor.addLineClass(line - 1, "background", "cm-error-line");
    editor.scrollIntoView({ line: line - 1, ch: 0 }, 80);
    editor.setCursor({ line: line - 1, ch: 0 });
    editor.on("change", function clear() {
      editor.removeLineClass(handle, "background", "cm-error-line");
      editor.off("change", clear);
    });
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errorEl.hidden = true;
    errorEl.textContent = "";
    button.disabled = true;
    button.textContent = "Starting…";
    try {
      if (!(await saveEditor())) {
        showError({ error: "The open file was not saved (see the message above the editor): settle that first." });
        return;
      }
      const resp = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
      });
      const data = await resp.json().catch(() => ({ error: "The sweep could not start (HTTP " + resp.status + ")." }));
      if (!resp.ok) {
        showError(data);
        return;
      }
      window.luminideSubmitting = true; // no "unsaved changes" prompt on leaving
      location.href = data.url;
    } catch (e) {
      showError({ error: "The sweep could not start: " + e.message });
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
})();
