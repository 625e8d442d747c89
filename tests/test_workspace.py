"""The workspace layout and atomic writes: a failure mid-write leaves the last good file in place."""

import json

import pytest

from tasks.workspace import Workspace, atomic_dir, atomic_path, workspace_root, write_json_atomic


def test_root_is_read_from_the_environment_when_called(monkeypatch, tmp_path):
    monkeypatch.setenv("IMGSEARCH_HOME", str(tmp_path / "a"))
    assert workspace_root() == (tmp_path / "a").resolve()
    monkeypatch.setenv("IMGSEARCH_HOME", str(tmp_path / "b"))
    assert Workspace.from_env().root == (tmp_path / "b").resolve()


def test_constructing_a_workspace_makes_no_directories(tmp_path):
    Workspace(tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a file")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_dir_replaces_whole_directory_or_nothing(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("second")
            raise RuntimeError("crash")
    assert (target / "a.txt").read_text() == "first"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
