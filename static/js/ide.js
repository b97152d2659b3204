/* IDE page: file tree of code/ (new, rename, upload, delete), CodeMirror editor with Ctrl-S
   save, YAML errors inline. */
(function () {
  "use strict";

  const host = document.getElementById("editor-host");
  const treeEl = document.getElementById("file-tree");
  const pathEl = document.getElementById("editor-path");
  const dirtyEl = document.getElementById("editor-dirty");
  const statusEl = document.getElementById("editor-status");
  const errorEl = document.getElementById("editor-error");
  const saveBtn = document.getElementById("save-button");
  const deleteBtn = document.getElementById("delete-button");
  const renameBtn = document.getElementById("rename-button");
  const uploadForm = document.getElementById("upload-form");
  const trainNeeds = document.getElementById("train-needs");
  const trainForm = document.getElementById("train-form");
  if (!host || !treeEl) return;

  const csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const modes = { python: "python", yaml: "yaml", shell: "shell", text: null };

  const editor = CodeMirror(host, {
    value: "",
    mode: null,
    theme: "eclipse",
    lineNumbers: true,
    indentUnit: 4,
    tabSize: 4,
    indentWithTabs: false,
    matchBrackets: true,
    styleActiveLine: true,
    readOnly: "nocursor",
    extraKeys: {
      // Ctrl-S / Cmd-S: the document's keydown handler below (here too, it saved twice).
      Tab: (cm) =>
        cm.somethingSelected() ? cm.indentSelection("add") : cm.replaceSelection(" ".repeat(cm.getOption("indentUnit"))),
    },
  });
  editor.setSize("100%", "100%");
  window.luminideEditor = editor; // for tests and the console

  let current = null; // path of the open file
  let currentVersion = null; // its fingerprint on disk when opened or last saved
  let cleanGen = 0;
  let errorMark = null;

  function setStatus(text, kind) {
    statusEl.textContent = text || "";
    statusEl.className = "editor-status" + (kind ? " " + kind : "");
  }

  function isDirty() {
    return current !== null && !editor.isClean(cleanGen);
  }

  function refreshDirty() {
    const dirty = isDirty();
    dirtyEl.hidden = !dirty;
    saveBtn.disabled = current === null;
    deleteBtn.disabled = current === null;
    renameBtn.disabled = current === null;
    saveBtn.classList.toggle("btn-primary", dirty);
    document.title = (dirty ? "● " : "") + document.title.replace(/^● /, "");
  }
  editor.on("change", refreshDirty);
  // The error is about the text as it was saved: once edited, say so (it may be fixed).
  editor.on("change", () => {
    if (errorEl.hidden || errorEl.dataset.kind !== "save" || errorEl.classList.contains("stale")) return;
    errorEl.classList.add("stale");
    errorEl.append(" (edited since: Ctrl-S checks again)");
  });

  // An error that is not about the editor's text (new file, rename, delete).
  function showOtherError(text) {
    clearError();
    errorEl.hidden = false;
    errorEl.dataset.kind = "other";
    errorEl.textContent = text;
  }

  // POST a JSON body (or a form's FormData, sent as multipart); the reply's JSON, or an
  // error naming the HTTP status.
  async function postJson(url, body, failed) {
    const form = body instanceof FormData;
    const headers = { "X-CSRFToken": csrf, Accept: "application/json" };
    if (!form) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, { method: "POST", headers: headers, body: form ? body : JSON.stringify(body) });
    const data = await resp.json().catch(() => ({ error: failed + " (HTTP " + resp.status + ")" }));
    return { ok: resp.ok, data: data };
  }

  function clearError() {
    errorEl.hidden = true;
    errorEl.dataset.kind = "";
    errorEl.classList.remove("stale");
    errorEl.textContent = "";
    if (errorMark !== null) {
      editor.removeLineClass(errorMark, "background", "cm-error-line");
      errorMark = null;
    }
  }

  function showError(data) {
    errorEl.hidden = false;
    errorEl.dataset.kind = "save";
    errorEl.classList.remove("stale");
    errorEl.textContent = data.error || "Not saved";
    if (data.conflict) offerConflictChoices(data);
    if (data.line) {
      const line = data.line - 1;
      errorMark = editor.addLineClass(line, "background", "cm-error-line");
      editor.scrollIntoView({ line: line, ch: 0 }, 80);
      editor.setCursor({ line: line, ch: Math.max(0, (data.column || 1) - 1) });
    }
  }

  // Saved elsewhere since it was opened: keep this text, or take the one on disk.
  function offerConflictChoices(data) {
    const keep = document.createElement("button");
    keep.type = "button";
    keep.className = "btn btn-sm";
    keep.textContent = data.deleted ? "Save mine (recreate it)" : "Save mine over it";
    keep.addEventListener("click", () => save(true));
    errorEl.append(" ", keep);
    if (!data.deleted) {
      const reload = document.createElement("button");
      reload.type = "button";
      reload.className = "btn btn-sm";
      reload.textContent = "Reopen from disk (drops my edits)";
      reload.addEventListener("click", () => open(current, true));
      errorEl.append(" ", reload);
    }
  }

  async function open(path, confirmed = false) {
    if (!confirmed && isDirty() && !window.confirm("Discard unsaved changes to " + current + "?")) return;
    clearError();
    setStatus("Opening…");
    const resp = await fetch(host.dataset.openUrl + "?path=" + encodeURIComponent(path), {
      headers: { Accept: "application/json" },
    });
    const data = await resp.json().catch(() => ({ error: "Could not open " + path }));
    if (!resp.ok) {
      setStatus("");
      errorEl.hidden = false;
      errorEl.textContent = data.error + " (" + path + ")";
      return;
    }
    current = data.path;
    currentVersion = data.version;
    editor.setOption("readOnly", false);
    editor.setOption("mode", modes[data.mode] || null);
    editor.setOption("indentUnit", data.mode === "yaml" ? 2 : 4);
    editor.setValue(data.content);
    editor.clearHistory();
    cleanGen = editor.changeGeneration();
    pathEl.textContent = data.path;
    pathEl.classList.remove("muted");
    setStatus("");
    markActive();
    refreshDirty();
    editor.focus();
    history.replaceState(null, "", "#" + encodeURIComponent(data.path));
  }

  async function save(overwrite = false) {
    if (current === null) return true;
    clearError();
    setStatus("Saving…");
    const gen = editor.changeGeneration();
    const body = { path: current, content: editor.getValue() };
    if (!overwrite) body.base_version = currentVersion;
    const resp = await fetch(host.dataset.saveUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({ error: "Save failed (HTTP " + resp.status + ")" }));
    if (!resp.ok) {
      setStatus("Not saved", "error");
      showError(data);
      return false;
    }
    cleanGen = gen;
    currentVersion = data.version;
    refreshDirty();
    if (overwrite) await loadTree(); // a deleted file is back
    setStatus("Saved " + new Date().toLocaleTimeString(), "ok");
    return true;
  }
  saveBtn.addEventListener("click", () => save());

  // Delete the open file from code/ (experiments keep their own snapshot copy).
  deleteBtn.addEventListener("click", async () => {
    if (current === null) return;
    const edits = isDirty() ? " Your unsaved edits are lost too." : "";
    if (!window.confirm("Delete code/" + current + "? Experiments that ran with it keep their copy." + edits)) return;
    deleteBtn.disabled = true; // a second click would delete a file that is gone
    const { ok, data } = await postJson(host.dataset.deleteUrl, { path: current }, "Delete failed");
    if (!ok) {
      deleteBtn.disabled = false;
      showOtherError(data.error);
      return;
    }
    current = null;
    currentVersion = null;
    editor.setValue("");
    editor.setOption("readOnly", "nocursor");
    cleanGen = editor.changeGeneration();
    pathEl.textContent = "Select a file";
    pathEl.classList.add("muted");
    setStatus("Deleted " + data.path, "ok");
    refreshDirty();
    history.replaceState(null, "", location.pathname);
    await loadTree();
  });

  // Rename or move the open file; the editor follows it, unsaved edits included (the file's
  // bytes are unchanged, so the version it was opened at still guards the next save).
  renameBtn.addEventListener("click", async () => {
    if (current === null) return;
    const name = current.split("/").pop();
    const to = (window.prompt("Rename or move code/" + current + " to (e.g. " + "sub/" + name + "):", current) || "").trim();
    if (!to || to === current) return;
    const { ok, data } = await postJson(host.dataset.renameUrl, { path: current, new_path: to }, "Rename failed");
    if (!ok) {
      showOtherError(data.error);
      return;
    }
    clearError();
    current = data.path;
    editor.setOption("mode", modes[data.mode] || null);
    pathEl.textContent = data.path;
    history.replaceState(null, "", "#" + encodeURIComponent(data.path));
    showFolders(data.path);
    await loadTree();
    setStatus("Renamed " + data.old_path + " → " + data.path, "ok");
  });

  document.addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") {
      ev.preventDefault();
      save();
    }
  });
  window.addEventListener("beforeunload", (ev) => {
    if (isDirty() && !window.luminideSubmitting) {
      ev.preventDefault();
      ev.returnValue = "";
    }
  });

  // ---------------------------------------------------------------- tree
  const openDirs = new Set(JSON.parse(sessionStorage.getItem("luminide-open-dirs") || "[]"));

  function icon(entry) {
    if (entry.type === "dir") return openDirs.has(entry.path) ? "▾" : "▸";
    const ext = (entry.name.match(/\.([a-z0-9]+)$/i) || [, ""])[1].toLowerCase();
    return { py: "py", yaml: "yml", yml: "yml", sh: "sh", md: "md", txt: "txt", json: "{}", csv: "csv" }[ext] || "·";
  }

  function renderTree(entries, depth) {
    const ul = document.createElement("ul");
    for (const entry of entries) {
      const li = document.createElement("li");
      const row = document.createElement("a");
      row.href = "#" + encodeURIComponent(entry.path);
      row.className = "tree-row tree-" + entry.type;
      row.dataset.path = entry.path;
      row.title = entry.path; // the full name where the column cuts it
      row.style.paddingLeft = 8 + depth * 14 + "px";
      const ic = document.createElement("span");
      ic.className = "tree-icon";
      ic.dataset.kind = entry.type === "dir" ? "dir" : icon(entry);
      ic.textContent = icon(entry);
      const name = document.createElement("span");
      name.textContent = entry.name;
      row.append(ic, name);
      li.append(row);
      if (entry.type === "dir") {
        const child = renderTree(entry.children || [], depth + 1);
        child.hidden = !openDirs.has(entry.path);
        li.append(child);
        row.addEventListener("click", (ev) => {
          ev.preventDefault();
          child.hidden = !child.hidden;
          if (child.hidden) openDirs.delete(entry.path);
          else openDirs.add(entry.path);
          ic.textContent = icon(entry);
          sessionStorage.setItem("luminide-open-dirs", JSON.stringify([...openDirs]));
        });
      } else {
        row.addEventListener("click", (ev) => {
          ev.preventDefault();
          open(entry.path);
        });
      }
      ul.append(li);
    }
    return ul;
  }

  // Open the folders of ``path`` in the tree, so its row shows.
  function showFolders(path) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) openDirs.add(parts.slice(0, i).join("/"));
    sessionStorage.setItem("luminide-open-dirs", JSON.stringify([...openDirs]));
  }

  function markActive() {
    treeEl.querySelectorAll(".tree-row.active").forEach((el) => el.classList.remove("active"));
    if (current === null) return;
    const row = treeEl.querySelector('.tree-row[data-path="' + CSS.escape(current) + '"]');
    if (row) row.classList.add("active");
  }

  async function loadTree() {
    const resp = await fetch(treeEl.dataset.url, { headers: { Accept: "application/json" } });
    if (!resp.ok) {
      treeEl.textContent = "Could not list files.";
      return [];
    }
    const data = await resp.json();
    treeEl.replaceChildren(renderTree(data.tree, 0));
    if (!data.tree.length) treeEl.innerHTML = '<p class="muted small pad">code/ is empty: add a file with + or upload some with ⇪.</p>';
    markActive();
    fillFolders(data.tree);
    showTrainNeeds(data.tree);
    return data.tree;
  }
  document.getElementById("tree-refresh").addEventListener("click", loadTree);

  // New file: an empty file at the path typed (folders are created), then opened.
  document.getElementById("new-file").addEventListener("click", async () => {
    if (isDirty() && !window.confirm("Discard unsaved changes to " + current + "?")) return;
    const path = (window.prompt("New file in code/ (e.g. model.py or data/augment.py):") || "").trim();
    if (!path) return;
    const body = { path: path, content: "", create: true };
    const { ok, data } = await postJson(host.dataset.saveUrl, body, "Could not create " + path);
    if (!ok) {
      showOtherError(data.error);
      return;
    }
    showFolders(data.path);
    await loadTree();
    await open(data.path, true);
  });

  // ---------------------------------------------------------------- upload
  const folderSelect = document.getElementById("upload-folder");
  const uploadError = document.getElementById("upload-error");
  const uploadInput = document.getElementById("upload-input");

  document.getElementById("upload-toggle").addEventListener("click", () => {
    uploadForm.hidden = !uploadForm.hidden;
    if (!uploadForm.hidden) uploadInput.focus();
  });

  // The folders the tree shows, as upload targets; the one picked stays picked.
  function fillFolders(entries) {
    const picked = folderSelect.value;
    const options = [new Option("code/", "")];
    (function walk(list) {
      for (const e of list) {
        if (e.type !== "dir") continue;
        options.push(new Option("code/" + e.path + "/", e.path));
        walk(e.children || []);
      }
    })(entries);
    folderSelect.replaceChildren(...options);
    folderSelect.value = options.some((o) => o.value === picked) ? picked : "";
  }

  function showUploadError(lines) {
    uploadError.hidden = false;
    uploadError.replaceChildren(...lines.map((line) => Object.assign(document.createElement("div"), { textContent: line })));
  }

  uploadForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    uploadError.hidden = true;
    if (errorEl.dataset.kind === "other") clearError(); // e.g. a refused rename: stale now
    const chosen = [...uploadInput.files];
    const max = Number(uploadForm.dataset.maxBytes);
    // Refused here before sending megabytes the server would refuse too (it checks again).
    const maxFiles = Number(uploadForm.dataset.maxFiles);
    if (chosen.length > maxFiles) {
      showUploadError(["Nothing uploaded: " + chosen.length + " files chosen, at most " + maxFiles + " at a time."]);
      return;
    }
    const big = chosen.filter((f) => f.size > max);
    if (big.length) {
      showUploadError(["Nothing uploaded."].concat(big.map((f) => f.name + ": " + (f.size / 1048576).toFixed(1) + " MB is over the " + max / 1048576 + " MB limit per file")));
      return;
    }
    const button = document.getElementById("upload-button");
    button.disabled = true;
    const { ok, data } = await postJson(uploadForm.dataset.url, new FormData(uploadForm), "Upload failed");
    button.disabled = false;
    if (!ok) {
      showUploadError(data.errors ? ["Nothing uploaded."].concat(data.errors) : [data.error]);
      return;
    }
    uploadInput.value = "";
    data.paths.forEach(showFolders);
    await loadTree();
    setStatus("Uploaded " + data.paths.join(", "), "ok");
  });

  // What Train needs that code/ lacks (an empty project), said before the click.
  function showTrainNeeds(entries) {
    if (!trainNeeds) return;
    const top = new Set(entries.filter((e) => e.type === "file").map((e) => e.name));
    const missing = ["full.sh", "config.yaml"].filter((name) => !top.has(name));
    trainNeeds.hidden = !missing.length;
    trainNeeds.textContent =
      "Not in code/ yet: " + missing.join(", ") + ". Train runs full.sh (e.g. python ../code/train.py) with the hyperparameters in config.yaml: add them with + or upload them with ⇪.";
  }

  function flatten(entries, out) {
    for (const e of entries) {
      if (e.type === "file") out.push(e.path);
      else flatten(e.children || [], out);
    }
    return out;
  }

  // ---------------------------------------------------------------- tabs + train
  document.querySelectorAll(".ide-run .tab").forEach((tab) => {
    tab.addEventListener("click", () => {
      document.querySelectorAll(".ide-run .tab").forEach((t) => t.classList.toggle("active", t === tab));
      document.querySelectorAll(".ide-run .tab-body").forEach((body) => {
        body.hidden = body.dataset.tab !== tab.dataset.tab;
      });
    });
  });

  if (trainForm) {
    trainForm.addEventListener("submit", async (ev) => {
      if (window.luminideSubmitting) return;
      ev.preventDefault();
      if (isDirty() && !(await save())) return; // invalid YAML: do not train on the old file
      window.luminideSubmitting = true;
      const button = trainForm.querySelector("button[type=submit]");
      button.disabled = true;
      button.textContent = "Starting…";
      trainForm.submit();
    });
  }

  loadTree().then((entries) => {
    if (!entries.length) uploadForm.hidden = false; // an empty project starts with its code
    const files = flatten(entries, []);
    const wanted = decodeURIComponent(location.hash.slice(1));
    const initial = files.includes(wanted) ? wanted : files.includes(host.dataset.initial) ? host.dataset.initial : files[0];
    if (initial) open(initial);
  });
})();
