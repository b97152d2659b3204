"""luminide.files: writes that never clobber a file made meanwhile (upload, rename)."""

from __future__ import annotations

import pytest

from luminide import files


def test_write_without_replace_never_overwrites(tmp_path):
    target = tmp_path / "train.py"
    files.write_atomic(target, [b"mine"], replace=False)
    assert target.read_bytes() == b"mine"
    # Another tab created it between the check and the write: refused, nothing left over.
    with pytest.raises(FileExistsError):
        files.write_atomic(target, [b"theirs"], replace=False)
    assert target.read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["train.py"]
    files.write_atomic(target, [b"saved"])  # the editor's save replaces, atomically
    assert target.read_bytes() == b"saved"


def test_move_without_replace(tmp_path):
    source, target = tmp_path / "a.py", tmp_path / "b.py"
    source.write_text("a")
    target.write_text("b")
    with pytest.raises(FileExistsError):
        files.move_no_replace(source, target)
    assert (source.read_text(), target.read_text()) == ("a", "b")
    target.unlink()
    files.move_no_replace(source, target)
    assert not source.exists() and target.read_text() == "a"


def test_move_without_replace_where_hard_links_are_not_supported(tmp_path, monkeypatch):
    def no_links(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    source, target = tmp_path / "a.py", tmp_path / "b.py"
    source.write_text("a")
    target.write_text("b")
    with pytest.raises(FileExistsError):
        files.move_no_replace(source, target)
    target.unlink()
    files.move_no_replace(source, target)
    assert not source.exists() and target.read_text() == "a"
