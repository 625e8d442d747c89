"""Embedding logs a progress line per tenth of the rows it computes (the dashboard's view of a long stage),
whether or not a terminal shows the bar; cached rows are not counted as work."""

from __future__ import annotations

import logging
import re

import pytest
from PIL import Image

from tasks.embed.cache import embed_image_files, embed_texts
from tasks.embed.encoders.fakes import FakeImageEncoder, FakeTextEncoder
from tasks.embed.stage import EmbedInputs, embed_inputs

LINE = re.compile(r"^embedding (texts|images) with ([\w-]+): (\d+)/(\d+) rows \((\d+)%\) in [\d.]+ s, [\d.]+ rows/s$")


def progress(caplog) -> list[tuple[str, str, int, int, int]]:
    out = []
    for record in caplog.records:
        if m := LINE.match(record.getMessage()):
            out.append((m[1], m[2], int(m[3]), int(m[4]), int(m[5])))
    return out


def tenths(found, kind: str) -> list[int]:
    return [percent // 10 for k, _, _, _, percent in found if k == kind]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(64):
        path = folder / f"img{i:02d}.png"
        Image.new("RGB", (20, 16), (4 * i, 255 - 3 * i, (7 * i) % 256)).save(path)
        paths.append(path)
    return paths


TEXTS = [f"a photo of thing number {i}" for i in range(230)]


def test_texts_log_every_tenth_without_a_terminal(workspace, caplog):
    caplog.set_level(logging.INFO)
    embed_texts(TEXTS, FakeTextEncoder(), workspace, progress=False)
    found = progress(caplog)
    assert tenths(found, "texts") == list(range(1, 11))
    assert found[-1][1:4] == ("fake-text", 230, 230)

    caplog.clear()
    embed_texts(TEXTS, FakeTextEncoder(), workspace, progress=False)  # all cached: nothing to report
    assert not progress(caplog)


def test_images_log_every_tenth(workspace, images, caplog):
    caplog.set_level(logging.INFO)
    embed_image_files(images, FakeImageEncoder(), workspace, batch_size=16, num_workers=2, progress=False)
    found = progress(caplog)
    assert tenths(found, "images") == list(range(1, 11))
    assert found[-1][2:4] == (64, 64)


def test_the_stage_logs_every_tenth_of_each_kind_across_shards(workspace, images, caplog):
    caplog.set_level(logging.INFO)
    inputs = EmbedInputs(
        tuple(f"q{i}" for i in range(len(TEXTS))), tuple(TEXTS), tuple(images[:50]), tuple(images[50:])
    )
    output = embed_inputs(inputs, "fake-text", "fake-image", workspace, shard_size=100)
    assert output.summary.shards == 4  # 3 text shards and 1 image shard: the lines span shards
    found = progress(caplog)
    assert tenths(found, "texts") == list(range(1, 11))
    assert tenths(found, "images") == list(range(1, 11))
    assert {(k, total) for k, _, _, total, _ in found} == {("texts", 230), ("images", 64)}
