"""Assembling a model folder from split-zip pieces: checksum, atomic placement, no path escapes."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from tasks.embed.encoders.split_zip import SplitZipModel, assemble_split_zip


def _split_zip(tmp_path: Path, files: dict[str, bytes], pieces: int = 3) -> tuple[list[Path], str]:
    """A zip of `files`, cut into `pieces` files like the PyPI parts; returns the pieces and the zip's sha256."""
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    data = whole.read_bytes()
    size = -(-len(data) // pieces)
    paths = []
    for i in range(pieces):
        piece = tmp_path / f"model.zip.00{i + 1}"
        piece.write_bytes(data[i * size : (i + 1) * size])
        paths.append(piece)
    return paths, hashlib.sha256(data).hexdigest()


MODEL_FILES = {
    "tiny/modules.json": b"[]",
    "tiny/config.json": b"{}",
    "tiny/1_Pooling/config.json": b"{}",
    "tiny/desktop.ini": b"[.ShellClassInfo]",
}


def test_pieces_become_the_model_folder(tmp_path):
    pieces, digest = _split_zip(tmp_path, MODEL_FILES)
    model = SplitZipModel("tiny", ("a", "b", "c"), digest, "tiny")
    folder = assemble_split_zip(model, tmp_path / "weights", pieces)
    assert folder == tmp_path / "weights" / "tiny"
    assert (folder / "modules.json").read_bytes() == b"[]" and (folder / "1_Pooling" / "config.json").is_file()
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "weights").iterdir()] == ["tiny"]  # no scratch left behind
    assert assemble_split_zip(model, tmp_path / "weights", pieces=[]) == folder  # already there: pieces not read


def test_a_wrong_or_missing_piece_is_refused_and_leaves_nothing(tmp_path):
    pieces, digest = _split_zip(tmp_path, MODEL_FILES)
    model = SplitZipModel("tiny", ("a", "b", "c"), digest, "tiny")
    with pytest.raises(ValueError, match="expected"):
        assemble_split_zip(model, tmp_path / "weights", pieces[:2])
    assert list((tmp_path / "weights").iterdir()) == []


def test_paths_outside_the_model_folder_are_refused(tmp_path):
    pieces, digest = _split_zip(tmp_path, {"tiny/modules.json": b"[]", "tiny/../../evil.txt": b"x"})
    with pytest.raises(ValueError, match="unexpected path"):
        assemble_split_zip(SplitZipModel("tiny", ("a",), digest, "tiny"), tmp_path / "weights", pieces)
    assert not (tmp_path / "evil.txt").exists()


def test_missing_packages_say_which_extra_to_install(monkeypatch, tmp_path):
    from tasks.embed.encoders.base import ModelNotAvailableError
    from tasks.embed.encoders.split_zip import MPNET, installed_pieces

    with pytest.raises(ModelNotAvailableError, match=r"\.\[mpnet\]"):
        installed_pieces(SplitZipModel("x", ("no-such-distribution-imgsearch",), MPNET.sha256, "mpnet"))
