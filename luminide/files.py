"""The file editor's boundary: safe paths inside a folder, text reads, validated saves.

Every path that comes from the browser goes through :func:`resolve_inside`, which refuses
absolute paths, ``..`` components and symlinks anywhere on the way, so the editor never reads
or writes outside the project's ``code/`` folder (or an experiment's output folder for
downloads).
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

MAX_EDIT_BYTES = 2 * 1024 * 1024
# code/ is copied into every experiment: uploads are code and small files, data goes in input/.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Folders that are never shown in the tree (caches, VCS internals).
HIDDEN_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache"}
YAML_VALIDATED = {"config.yaml", "sweep.yaml"}


class UnsafePath(ValueError):
    """A path that points outside the allowed folder, through a symlink, or nowhere valid."""


class NotText(ValueError):
    """A file that cannot be edited as text (binary, not UTF-8, or too large)."""


@dataclass(frozen=True)
class YamlProblem:
    """Why a YAML file was refused; ``line`` and ``column`` are 1-based when known."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.column is None:
            return f"line {self.line}: {self.message}"
        return f"line {self.line}, column {self.column}: {self.message}"

    def as_dict(self) -> dict:
        return {"message": self.message, "line": self.line, "column": self.column}


def resolve_inside(root: Path, rel: str, *, must_exist: bool = True) -> Path:
    """The path ``rel`` (relative, ``/``-separated) inside ``root``, checked for escapes.

    Raises:
        UnsafePath: ``rel`` is empty, absolute, contains ``..``, a NUL byte or a backslash,
            passes through or names a symlink, or (with ``must_exist``) does not exist.
    """
    if not rel or "\x00" in rel or "\\" in rel:
        raise UnsafePath("invalid path")
    pure = PurePosixPath(rel)
    if pure.is_absolute():
        raise UnsafePath("absolute paths are not allowed")
    if rel.startswith("~"):  # a shell would read it as a home folder
        raise UnsafePath("a path may not start with ~")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts:
        raise UnsafePath("invalid path")
    if ".." in parts:
        raise UnsafePath("'..' is not allowed in paths")
    root = root.resolve()
    current = root
    try:
        for part in parts:
            current = current / part
            if current.is_symlink():
                raise UnsafePath("symlinks are not followed")
        if not current.resolve().is_relative_to(root):
            raise UnsafePath("path is outside the folder")
        if must_exist and not current.exists():
            raise UnsafePath("no such file")
    except OSError as exc:  # a name over the file system's limit (ENAMETOOLONG), ...
        raise UnsafePath(exc.strerror or "invalid path") from None
    return current


def tree(root: Path) -> list[dict]:
    """Nested listing of ``root``: folders first, then files, both by name; no symlinks."""

    def walk(folder: Path, prefix: str) -> list[dict]:
        entries: list[dict] = []
        try:
            children = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        except OSError:
            return entries
        for child in children:
            if child.name in HIDDEN_NAMES or child.is_symlink():
                continue
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                entries.append(
                    {
                        "name": child.name,
                        "path": rel,
                        "type": "dir",
                        "children": walk(child, rel + "/"),
                    }
                )
            elif child.is_file():
                entries.append(
                    {"name": child.name, "path": rel, "type": "file", "size": child.stat().st_size}
                )
        return entries

    if not root.is_dir():
        return []
    return walk(root, "")


def read_text(path: Path) -> str:
    """The content of a text file, or :class:`NotText`."""
    if not path.is_file():
        raise NotText("not a file")
    if path.stat().st_size > MAX_EDIT_BYTES:
        raise NotText(f"file is larger than {MAX_EDIT_BYTES // (1024 * 1024)} MB")
    data = path.read_bytes()
    if b"\x00" in data:
        raise NotText("binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotText("not a UTF-8 text file") from None


def version(path: Path) -> str | None:
    """A fingerprint of the file's bytes (None when it is gone): the editor sends back the one
    it opened, so a save never silently replaces a change made since (another tab, Use tuned
    config)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def validate_yaml(name: str, text: str) -> YamlProblem | None:
    """Check ``config.yaml`` / ``sweep.yaml`` content; None when it may be saved."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"{context}, {problem}" if context else problem
        if mark is not None:
            return YamlProblem(message, mark.line + 1, mark.column + 1)
        return YamlProblem(message)
    # Semantics (flat config, sweep search space) come from the same parser the runner and
    # the sweep engine use, so the editor refuses exactly what they would refuse.
    from sweeps.search_space import YamlFileError, parse_config_yaml, parse_sweep_yaml

    parse = parse_config_yaml if name == "config.yaml" else parse_sweep_yaml
    try:
        parse(text, name)
    except YamlFileError as exc:
        return YamlProblem(exc.detail, exc.line)
    return None


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    write_atomic(path, [text.encode("utf-8")])


def write_atomic(path: Path, chunks: Iterable[bytes], *, replace: bool = True) -> None:
    """Replace ``path`` with the bytes of ``chunks`` so readers see the old or the new file.

    Raises:
        FileExistsError: ``replace`` is False and ``path`` exists (checked atomically, so a
            file created meanwhile, e.g. from another tab, is never overwritten).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        if replace:
            os.replace(tmp, path)
        else:
            move_no_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def move_no_replace(source: Path, target: Path) -> None:
    """Move the file ``source`` to ``target``; FileExistsError if ``target`` exists, checked
    atomically (a hard link fails on an existing name; ``rename`` would replace it). On a file
    system without hard links the check and the move are two steps."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # EPERM / ENOTSUP: no hard links here
        if target.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        source.rename(target)
        return
    source.unlink()


def remove_empty_folders(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``root`` while they are empty:
    the file tree has no other way to remove a folder a delete or a move left empty."""
    root = root.resolve()
    while folder != root and folder.is_relative_to(root) and folder.is_dir():
        if any(folder.iterdir()):
            break
        folder.rmdir()
        folder = folder.parent
