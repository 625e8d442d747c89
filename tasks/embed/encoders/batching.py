"""Running encoders over many texts or image files in batches, decoding in threads."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.embed.encoders.base import IMAGE_BATCH_SIZE, ImageEncoder, TextEncoder, as_float32_rows, load_rgb

if TYPE_CHECKING:
    from tasks.progress import ProgressLog


def _auto_progress(progress: bool | None) -> bool | None:
    # tqdm's disable=None hides the bar when stderr is not a terminal (CI logs, Prefect workers).
    return None if progress is None else not progress


def encode_texts(
    encoder: TextEncoder,
    texts: list[str],
    batch_size: int = 256,
    progress: bool | None = None,
    progress_log: ProgressLog | None = None,
) -> np.ndarray:
    """Run a text encoder over many texts in batches, with a progress bar on a terminal (`progress`) and,
    given `progress_log`, its rows counted there (which logs a line per tenth)."""
    from tqdm.auto import tqdm

    if progress_log is not None:
        batch_size = progress_log.batch_size(batch_size)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with tqdm(
        total=len(texts), unit="text", desc=encoder.encoder_id, disable=_auto_progress(progress), leave=False
    ) as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[start : start + len(chunk)] = as_float32_rows(
                encoder.encode(chunk), len(chunk), encoder.dim, encoder.encoder_id
            )
            bar.update(len(chunk))
            if progress_log is not None:
                progress_log.update(len(chunk))
    return out


def iter_preprocessed(paths: Sequence[Path], encoder: ImageEncoder, num_workers: int = 2, window: int = 64):
    """Decode and preprocess images in a thread pool, yielding them in input order.

    Threads rather than DataLoader processes: PIL decoding and resizing release the GIL, nothing is
    pickled between processes, and it also works inside daemonic Dask worker processes (which may not
    fork children). At most `window` images are in flight, so memory stays flat on any number of files.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    transform, size = encoder.preprocess, encoder.image_size

    def load(path: Path) -> Any:
        try:
            return transform(load_rgb(path, size))
        except Exception as err:  # name the file: a decode error deep in a batch is otherwise anonymous
            raise RuntimeError(f"cannot decode or preprocess image {path}: {err}") from err

    if num_workers <= 0:
        yield from (load(Path(p)) for p in paths)
        return
    with ThreadPoolExecutor(num_workers, thread_name_prefix="decode") as pool:
        pending: deque = deque()
        for path in paths:
            pending.append(pool.submit(load, Path(path)))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def encode_image_files(
    encoder: ImageEncoder,
    paths: Sequence[Path],
    batch_size: int = IMAGE_BATCH_SIZE,
    num_workers: int = 2,
    progress: bool | None = None,
    progress_log: ProgressLog | None = None,
) -> np.ndarray:
    """Embed image files in batches; decoding runs in `num_workers` threads while the model runs.
    Progress as in `encode_texts`."""
    from tqdm.auto import tqdm

    if progress_log is not None:
        batch_size = progress_log.batch_size(batch_size)
    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    batch: list[Any] = []
    done = 0
    window = max(batch_size * 2, 2 * num_workers)
    with tqdm(
        total=len(paths), unit="img", desc=encoder.encoder_id, disable=_auto_progress(progress), leave=False
    ) as bar:
        for item in iter_preprocessed(paths, encoder, num_workers, window):
            batch.append(item)
            if len(batch) == batch_size:
                out[done : done + len(batch)] = encoder.encode_preprocessed(batch)
                done += len(batch)
                bar.update(len(batch))
                if progress_log is not None:
                    progress_log.update(len(batch))
                batch = []
        if batch:
            out[done : done + len(batch)] = encoder.encode_preprocessed(batch)
            bar.update(len(batch))
            if progress_log is not None:
                progress_log.update(len(batch))
    return out
