"""What a running server answers from, and how it follows retrains without a restart.

Each request takes one frozen `ServingState` (a searcher and the versions it was loaded from), so an answer
never mixes two models or two indexes. `ServingStates` looks at the files a retrain changes (the champion
pointer, the index's metadata, the detector and the human safety flags) at most once per `check_every`
seconds, from the request that comes by; when they changed it loads a new state in a background thread
while the old one keeps answering, then swaps the reference (atomic in Python). A load that fails keeps the
old state and is reported as `last_reload_error` until a later load succeeds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tasks.search.index import IndexChangedError
from tasks.search.searcher import Searcher
from tasks.workspace import Workspace

DEFAULT_CHECK_EVERY = 1.0  # seconds between looks at the watched files
RETRY_FAILED_AFTER = 30.0  # seconds before a load that failed on unchanged files is tried again
# The first load, which a request waits for, is tried again this many times when the index was swapped while it
# was read (a server starting during `imgsearch index`): the swap is one rename, so the next read finds it whole.
FIRST_LOAD_TRIES = 5

Fingerprint = tuple


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ServingState:
    """One loaded searcher and the versions that name it; never changed after it is made."""

    searcher: Searcher
    model_version: str
    index_version: str
    dataset_version: str  # the dataset the champion was trained on
    index_dataset_version: str  # the dataset whose images the index holds ("" for another folder)
    fingerprint: Fingerprint = ()
    loaded_at: str = field(default_factory=_now)

    @classmethod
    def of(cls, searcher: Searcher, fingerprint: Fingerprint = ()) -> ServingState:
        index = searcher.index
        return cls(
            searcher=searcher,
            model_version=searcher.record.version,
            index_version=index.version or index.built,
            dataset_version=searcher.record.data_version,
            index_dataset_version=index.dataset_version,
            fingerprint=fingerprint,
        )


def watched_files(workspace: Workspace, index_name: str = "gallery") -> list[Path]:
    """The files whose change means a new serving state: what `Searcher.from_workspace` reads."""
    from tasks.training.registry import CHAMPION_FILE

    detector = workspace.detector_path
    return [
        workspace.models / CHAMPION_FILE,
        workspace.index_dir(index_name) / "index.json",
        detector,
        detector.with_suffix(".json"),
        workspace.caption_flags_path,
    ]


def fingerprint(paths: Sequence[Path]) -> Fingerprint:
    """Identity of each file now: inode, size and mtime (a rename-over gives a new inode), plus the content of
    small files (the champion pointer and index.json), so a reused inode cannot hide a change."""
    parts: list[object] = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            parts.append(None)
            continue
        content = ""
        if stat.st_size <= 64 * 1024 and path.suffix == ".json":
            try:
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                content = "gone"
        parts.append((stat.st_ino, stat.st_size, stat.st_mtime_ns, content))
    return tuple(parts)


class ServingStates:
    """The current serving state, reloaded in the background when the watched files change.

    `check_every=None` never looks again: the state loaded first is served for the process's life (tests
    and callers that hand in a fixed searcher).
    """

    def __init__(
        self,
        load: Callable[[Searcher | None], Searcher],
        watched: Sequence[Path] = (),
        check_every: float | None = DEFAULT_CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ):
        if check_every is not None and check_every < 0:
            raise ValueError(f"check_every must be at least 0 seconds, got {check_every}")
        self._load, self._watched, self.check_every, self._clock = load, list(watched), check_every, clock
        self._state: ServingState | None = None
        self._first_lock = threading.Lock()  # only the very first load blocks requests
        self._check_lock = threading.Lock()
        self._next_check = 0.0
        self._loading = False
        self._failed: tuple[Fingerprint, float] | None = None  # files a load failed on, and when
        self.last_reload_error: dict | None = None
        self.reloads = 0  # successful loads after the first
        self.last_check: str | None = None

    @classmethod
    def for_workspace(
        cls, workspace: Workspace, index_name: str = "gallery", check_every: float | None = DEFAULT_CHECK_EVERY
    ) -> ServingStates:
        return cls(
            lambda previous: Searcher.from_workspace(workspace, index_name, reuse=previous),
            watched_files(workspace, index_name),
            check_every,
        )

    @classmethod
    def fixed(cls, factory: Callable[[], Searcher]) -> ServingStates:
        """One searcher, made on first use, never reloaded."""
        return cls(lambda previous: factory(), (), check_every=None)

    def current(self) -> ServingState:
        """The state this request answers from (a look at the files first, if one is due)."""
        state = self._state
        if state is None:
            with self._first_lock:
                if self._state is None:
                    self._state = self._first_load()
                    self._next_check = self._clock() + (self.check_every or 0.0)
                state = self._state
        self._maybe_reload(state)
        return state

    def _first_load(self) -> ServingState:
        for attempt in range(FIRST_LOAD_TRIES):
            files = fingerprint(self._watched)
            try:
                return ServingState.of(self._load(None), files)
            except IndexChangedError:
                if attempt == FIRST_LOAD_TRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _maybe_reload(self, state: ServingState) -> None:
        if self.check_every is None:
            return
        now = self._clock()
        with self._check_lock:
            if self._loading or now < self._next_check:
                return
            self._next_check = now + self.check_every
            files = fingerprint(self._watched)
            self.last_check = _now()
            if files == state.fingerprint:
                return
            if self._failed is not None and self._failed[0] == files and now - self._failed[1] < RETRY_FAILED_AFTER:
                return
            self._loading = True
        threading.Thread(target=self._reload, args=(state, files), name="imgsearch-reload", daemon=True).start()

    def _reload(self, previous: ServingState, files: Fingerprint) -> None:
        try:
            state = ServingState.of(self._load(previous.searcher), files)
        except Exception as err:  # noqa: BLE001 - any failure keeps the old state; it is reported, not raised
            self._failed = (files, self._clock())
            self.last_reload_error = {"error": f"{type(err).__name__}: {err}"[:2000], "at": _now()}
        else:
            self._state = state
            self._failed = None
            self.last_reload_error = None
            self.reloads += 1
        finally:
            with self._check_lock:
                self._loading = False
                # look again at once: the files may have changed while this load ran
                self._next_check = min(self._next_check, self._clock())

    def health(self, state: ServingState) -> dict:
        """What `/healthz` says about serving: the versions answering and the reloads."""
        return {
            "model_version": state.model_version,
            "index_version": state.index_version,
            "dataset_version": state.dataset_version,
            "index_dataset_version": state.index_dataset_version,
            "loaded_at": state.loaded_at,
            "reloads": self.reloads,
            "check_every": self.check_every,
            "last_check": self.last_check,
            "last_reload_error": self.last_reload_error,
        }
