"""Search and pair scoring over an indexed gallery, safety first.

Order of checks, for every request: the text screen (a flagged query is refused before any model
work), then the gallery's child flags (flagged images are not in the searchable index at all, so
no query can return them), then the champion model. Scores are the champion's relevance in [0, 1].
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from cachetools import LRUCache

from tasks.search.ann import ResolvedAnn, VectorLookup, lookup_for
from tasks.search.index import GalleryIndex, SearchUnavailableError, project_gallery, top_k
from tasks.search.names import NameRows
from tasks.workspace import Workspace

if TYPE_CHECKING:
    from tasks.embed.cache import EmbeddingCache
    from tasks.search.captions import GalleryCaptions

MAX_QUERY_CHARS = 500
MAX_K = 100
QUERY_CACHE_SIZE = 4096  # query text vectors kept in memory; popular queries skip the text encoder
SERVED_IMAGE_CACHE_SIZE = 1024  # detector features of images scored by the web app, kept in memory
SERVED_CACHE_PART_BYTES = 256 * 2**20  # embedding-cache parts a served searcher keeps after reading them


@dataclass(frozen=True)
class Hit:
    image: str
    path: str
    score: float


@dataclass(frozen=True)
class SearchResult:
    query: str
    refused: bool
    notice: str | None
    results: list[Hit] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "query": self.query,
            "refused": self.refused,
            "notice": self.notice,
            "results": [asdict(h) for h in self.results],
        }


@dataclass(frozen=True)
class PairScore:
    text: str
    image: str
    score: float | None
    refused: bool
    notice: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def is_blank(text: str | None) -> bool:
    """Nothing a person could see: empty, spaces, or only invisible characters (zero-width space, joiners, BOM,
    soft hyphen and other format or control characters), which the text screen drops anyway."""
    return not any(not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc", "Zs") for ch in text or "")


def validate_query(query: str, k: int) -> str:
    query = (query or "").strip()
    if is_blank(query):
        raise ValueError("query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(query)} characters; at most {MAX_QUERY_CHARS}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    return query


class Searcher:
    """Answers queries and scores pairs with the champion model over one gallery index."""

    def __init__(
        self,
        model,
        record,
        text_encoder,
        image_encoder,
        index: GalleryIndex,
        content_filter,
        policy,
        workspace: Workspace,
    ):
        if index.image_encoder != record.image_encoder:
            raise SearchUnavailableError(
                f"the gallery was embedded with {index.image_encoder!r} "
                f"but the champion uses {record.image_encoder!r}; "
                "re-run `imgsearch index`"
            )
        self.model, self.record = model, record
        self.text_encoder, self.image_encoder = text_encoder, image_encoder
        # `policy` (safety.policy.SafetyPolicy) is the one safety decision; the index already applied it.
        self.index, self.content_filter, self.policy, self.workspace = index, content_filter, policy, workspace
        # Two-tower champions score by a dot product: the gallery is projected once (at index time when
        # the index was built for this champion), then a query is one matrix-vector product.
        self._projected = None
        if hasattr(model, "embed_images") and index.images:
            if index.projected is not None and index.projected_for == record.version:
                self._projected = np.ascontiguousarray(index.projected)
            elif index.embeddings is not None:
                self._projected = project_gallery(model, index.embeddings)
        if self._projected is None and index.images and index.embeddings is None:
            raise SearchUnavailableError(
                "the gallery index has no raw embeddings for this champion; re-run `imgsearch index`"
            )
        self._known = NameRows(index.images)  # name -> row; a dict of 10M names would cost about 1 GiB
        self._flagged = set(index.flagged["image"]) if len(index.flagged) else set()
        # Belt and braces: an index must never hold a vector for a flagged image.
        leaked = {name for name in self._flagged if name in self._known}
        if leaked:
            raise SearchUnavailableError(
                f"gallery index lists flagged images as searchable: {sorted(leaked)[:5]}; re-run `imgsearch index`"
            )
        # sigmoid(a * cosine + b) with a > 0 keeps the cosine order: then top k is taken on raw cosines and
        # only the k winners are calibrated (a million exp() calls saved per query at a million images).
        self._rank_on_cosine = False
        self._lookup: VectorLookup | None = None
        if self._projected is not None:
            probe = np.asarray(model.calibrate(np.array([-1.0, 0.0, 1.0], dtype=np.float32)))
            self._rank_on_cosine = bool(probe[0] < probe[1] < probe[2])
            # the index's IVF lists hold its own projected vectors; vectors projected here get exact search
            own = index.projected is not None and index.projected_for == record.version
            self._lookup = lookup_for(
                self._projected, index.row_ids, ResolvedAnn.from_dict(index.ann), index.ivf if own else None
            )
        # Pair scoring applies the same decision to any file, and also refuses copies of hidden gallery images.
        self._flagged_hashes: set[str] | None = None
        self._query_cache: LRUCache[str, np.ndarray] = LRUCache(maxsize=QUERY_CACHE_SIZE)
        self._query_lock = threading.Lock()  # LRUCache is not thread-safe; web requests share the searcher
        self._served_vectors: LRUCache[tuple[str, str], np.ndarray] = LRUCache(maxsize=SERVED_IMAGE_CACHE_SIZE)
        # one embedding cache object per encoder, opened on the first scored file: it reads every part's keys once,
        # not on each request (a second a request at 50,000 cached images). Parts written after that are not seen:
        # their files are embedded again, as any miss is. Not thread-safe, so used under its own lock.
        self._caches: dict[str, EmbeddingCache] = {}
        self._cache_lock = threading.Lock()
        self._captions: GalleryCaptions | None = None  # read on first use (the CLI never needs them)

    @classmethod
    def from_workspace(
        cls, workspace: Workspace | None = None, index_name: str = "gallery", reuse: Searcher | None = None
    ) -> Searcher:
        """The champion, its encoders, the gallery index and the safety policy of `workspace`, loaded now.

        `reuse` is a searcher loaded before (a server reloading after a retrain): its text screen, and its
        encoders and model where the new champion names the same ones, are taken over instead of loaded again.
        """
        from tasks.embed.encoders.registry import get_image_encoder, get_text_encoder
        from tasks.safety.policy import SafetyPolicy
        from tasks.safety.text_screen import ChildContentFilter
        from tasks.training.registry import ModelRegistry

        workspace = workspace or Workspace.from_env()
        registry = ModelRegistry(workspace)
        record = registry.champion()
        if record is None:
            raise SearchUnavailableError(f"no champion model in {workspace.models}; run `imgsearch run DATA_DIR` first")
        if not workspace.detector_path.is_file():
            raise SearchUnavailableError(
                f"no child-image detector at {workspace.detector_path}; run `imgsearch run DATA_DIR` first"
            )
        model = reuse.model if reuse is not None and reuse.record.version == record.version else None
        text_encoder = reuse.text_encoder if reuse is not None else None
        image_encoder = reuse.image_encoder if reuse is not None else None
        if text_encoder is None or text_encoder.encoder_id != record.text_encoder:
            text_encoder = get_text_encoder(record.text_encoder)
        if image_encoder is None or image_encoder.encoder_id != record.image_encoder:
            image_encoder = get_image_encoder(record.image_encoder)
        return cls(
            model=model if model is not None else registry.load(record.version),
            record=record,
            text_encoder=text_encoder,
            image_encoder=image_encoder,
            index=GalleryIndex.load(workspace.index_dir(index_name)),
            content_filter=reuse.content_filter if reuse is not None else ChildContentFilter(),
            policy=SafetyPolicy.load(workspace),
            workspace=workspace,
        )

    # -- search -------------------------------------------------------------------------------------
    def _query_vector(self, query: str) -> np.ndarray:
        """The query's text-encoder vector (1, d). One-off queries skip the on-disk embedding cache (a
        Parquet write per query would dominate latency); repeated ones come from a small in-memory LRU."""
        from tasks.embed.encoders.base import as_float32_rows

        with self._query_lock:
            vector = self._query_cache.get(query)
        if vector is None:
            vector = as_float32_rows(
                self.text_encoder.encode([query]), 1, self.text_encoder.dim, self.text_encoder.encoder_id
            )
            with self._query_lock:
                self._query_cache[query] = vector
        return vector

    def _projected_query(self, query: str) -> np.ndarray:
        text = self._query_vector(query)
        return np.ascontiguousarray(self.model.embed_texts(text)[0], dtype=np.float32)

    def _cosines(self, query: str) -> np.ndarray:
        assert self._projected is not None, "the gallery has no projected vectors for this model"
        return self._projected @ self._projected_query(query)

    def query_scores(self, query: str) -> np.ndarray:
        """Champion scores in [0, 1] of every searchable gallery image for an already screened query."""
        if self._projected is not None:
            scores = self.model.calibrate(self._cosines(query))
        else:
            scores = self.model.score_matrix(self._query_vector(query), self.index.embeddings)[0]
        return np.clip(np.asarray(scores, dtype=np.float32), 0.0, 1.0)

    def rank(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(gallery rows, scores in [0, 1]) of the k best images, best first, for an already screened query."""
        if self._rank_on_cosine and self._lookup is not None:
            # exact or IVF: only rows of the searchable arrays come back (flagged images have no row)
            rows, cosines = self._lookup.search(self._projected_query(query), k)
            scores = np.asarray(self.model.calibrate(cosines), dtype=np.float32)
            return rows, np.clip(scores, 0.0, 1.0)
        scores = self.query_scores(query)
        rows = top_k(scores, k)
        return rows, scores[rows]

    def get_pictures(self, query: str, k: int = 5) -> SearchResult:
        from tasks.safety.text_screen import NOTICE

        query = validate_query(query, k)
        screen = self.content_filter.screen(query)
        if screen.flagged:
            return SearchResult(query, True, NOTICE, [], list(screen.matches))
        if not self.index.images:
            return SearchResult(query, False, None, [])
        rows, scores = self.rank(query, k)
        images = self.index.images
        hits = [
            Hit(images[i], self.index.path_of(images[i]), float(score)) for i, score in zip(rows, scores, strict=True)
        ]
        return SearchResult(query, False, None, hits)

    def captions_of(self, images: list[str]) -> dict[str, list[str]]:
        """The own human captions of searchable gallery images (for "why this scored"); a hidden or unknown image
        gets none, whatever the dataset says about it."""
        from tasks.search.captions import GalleryCaptions

        if self._captions is None:
            version = self.index.dataset_version or self.record.data_version
            human = self.policy.human_flags if self.policy is not None else None
            self._captions = GalleryCaptions.load(self.workspace, version, Path(self.index.folder), human)
        shown = [name for name in images if self.searchable(name)]
        found = self._captions.of(shown, lambda texts: [s.flagged for s in self.content_filter.screen_many(texts)])
        return {name: found.get(name, []) for name in images}

    # -- pair scoring ------------------------------------------------------------------------------
    def score_pairs(self, texts: list[str], image_paths: list[Path]) -> list[PairScore]:
        """Score aligned (text, image) pairs; flagged texts and images get the notice instead of a score."""
        from tasks.embed.cache import embed_image_files, embed_texts
        from tasks.safety.text_screen import NOTICE

        screens = self.content_filter.screen_many(texts)
        paths = [Path(p).resolve() for p in image_paths]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"image file(s) not found: {missing[:5]}")
        unique = sorted(set(paths))
        image_vecs = embed_image_files(unique, self.image_encoder, self.workspace).matrix
        row_of = {p: k for k, p in enumerate(unique)}
        hidden = self._hidden_files(unique, image_vecs)
        image_flag = {p: row_of[p] in hidden for p in unique}
        ok = [k for k, (s, p) in enumerate(zip(screens, paths, strict=True)) if not s.flagged and not image_flag[p]]
        scores = np.full(len(texts), np.nan, dtype=np.float32)
        if ok:
            text_vecs = embed_texts([texts[k] for k in ok], self.text_encoder, self.workspace).matrix
            scores[ok] = self.model.predict(text_vecs, image_vecs[[row_of[paths[k]] for k in ok]])
        out = []
        for k, (text, path) in enumerate(zip(texts, paths, strict=True)):
            if screens[k].flagged:
                out.append(
                    PairScore(
                        text, str(path), None, True, NOTICE, "text about children: " + ", ".join(screens[k].matches)
                    )
                )
            elif image_flag[path]:
                out.append(PairScore(text, str(path), None, True, NOTICE, "image shows a child"))
            else:
                out.append(PairScore(text, str(path), float(scores[k]), False))
        return out

    def score_gallery_image(self, text: str, name: str) -> PairScore:
        """Score `text` against the gallery image `name`, for the web app: the same screen and the same safety
        decision as `score_pairs`, but nothing is written to the workspace's embedding cache (which is the
        training stage's): the text vector comes from the in-memory query cache and the image's vectors from
        the index or the cache, read only, with an in-memory cache for what neither holds."""
        from tasks.safety.text_screen import NOTICE

        path = Path(self.index.folder) / name
        screen = self.content_filter.screen(text)
        if screen.flagged:
            return PairScore(text, str(path), None, True, NOTICE, "text about children: " + ", ".join(screen.matches))
        row = self._known.get(name)
        if row is None:  # a flagged gallery image: the index's decision stands
            return PairScore(text, str(path), None, True, NOTICE, "image shows a child")
        if self.index.embeddings is not None:
            image_vec = np.asarray(self.index.embeddings[row : row + 1], dtype=np.float32)
        else:
            image_vec = self._vectors_read_only([path], self.image_encoder)
        detector = self.policy.detector.encoder_id
        if detector == self.image_encoder.encoder_id:
            features = image_vec
        else:
            from tasks.embed.encoders.registry import get_image_encoder

            features = self._vectors_read_only([path], get_image_encoder(detector))
        if self._hidden_files([path], image_vec, features):
            return PairScore(text, str(path), None, True, NOTICE, "image shows a child")
        score = float(np.clip(self.model.predict(self._query_vector(text), image_vec)[0], 0.0, 1.0))
        return PairScore(text, str(path), score, False)

    def score_uploaded_file(self, text: str, path: Path) -> PairScore:
        """Score `text` against an image file that is not in the gallery (an upload to the web app): the same
        screen and the same safety decision as `score_pairs` (no caption vouches for a new file, so the
        detector's high-recall threshold applies, and a copy of a hidden image stays hidden), but, as for
        `score_gallery_image`, nothing is written to the workspace's embedding cache."""
        from tasks.embed.encoders.registry import get_image_encoder
        from tasks.safety.text_screen import NOTICE

        path = Path(path)
        screen = self.content_filter.screen(text)
        if screen.flagged:
            return PairScore(text, str(path), None, True, NOTICE, "text about children: " + ", ".join(screen.matches))
        image_vec = self._vectors_read_only([path], self.image_encoder)
        detector = self.policy.detector.encoder_id
        features = (
            image_vec
            if detector == self.image_encoder.encoder_id
            else self._vectors_read_only([path], get_image_encoder(detector))
        )
        if self._hidden_files([path], image_vec, features):
            return PairScore(text, str(path), None, True, NOTICE, "image shows a child")
        score = float(np.clip(self.model.predict(self._query_vector(text), image_vec)[0], 0.0, 1.0))
        return PairScore(text, str(path), score, False)

    def _vectors_read_only(self, paths: list[Path], encoder) -> np.ndarray:
        """Rows for image files from the embedding cache without adding to it; misses are computed and kept in
        a bounded in-memory cache of this searcher."""
        from tasks.embed.cache import EmbeddingCache, hash_files
        from tasks.embed.encoders.batching import encode_image_files

        keys = [(encoder.encoder_id, digest) for digest in hash_files(paths)]
        with self._query_lock:
            found = {k: self._served_vectors[k] for k in keys if k in self._served_vectors}
        todo = [k for k in keys if k not in found]
        if todo:
            with self._cache_lock:
                cache = self._caches.get(encoder.encoder_id)
                if cache is None:
                    cache = EmbeddingCache.for_workspace(self.workspace, encoder.encoder_id)
                    cache.keep_bytes = SERVED_CACHE_PART_BYTES
                    self._caches[encoder.encoder_id] = cache
                missing = set(cache.missing([digest for _, digest in todo]))
                from_cache = [k for k in todo if k[1] not in missing]
                if from_cache:
                    found.update(zip(from_cache, cache.get([digest for _, digest in from_cache]), strict=True))
            computed = [k for k in todo if k[1] in missing]
            if computed:
                where = {k: p for k, p in zip(keys, paths, strict=True)}
                found.update(zip(computed, encode_image_files(encoder, [where[k] for k in computed]), strict=True))
            with self._query_lock:
                for k in todo:
                    self._served_vectors[k] = np.asarray(found[k], dtype=np.float32)
        return np.stack([np.asarray(found[k], dtype=np.float32) for k in keys])

    def score(self, text: str, image_path: Path) -> PairScore:
        return self.score_pairs([text], [Path(image_path)])[0]

    def in_gallery(self, image: str) -> bool:
        """Is `image` a gallery image at all (searchable or flagged)? Scoring by name accepts only these."""
        return image in self._known or image in self._flagged

    def searchable(self, image: str) -> bool:
        """Is `image` an unflagged gallery image (the only kind search returns or the web app serves)?"""
        return image in self._known

    def _hidden_files(self, paths: list[Path], image_vecs: np.ndarray, features: np.ndarray | None = None) -> set[int]:
        """Positions in `paths` that the safety decision hides: a hidden gallery image, a copy of one, or any
        file the policy hides (its captions count only when its bytes are the dataset image they describe).
        `features` are the detector's features of `paths` when the caller has them."""
        from tasks.embed.cache import embed_image_files
        from tasks.embed.encoders.registry import get_image_encoder

        detector_id = self.policy.detector.encoder_id
        if features is None:
            features = (
                image_vecs
                if detector_id == self.image_encoder.encoder_id
                else embed_image_files(paths, get_image_encoder(detector_id), self.workspace).matrix
            )
        decided = self.policy.decide_files(paths, features)["hidden"].to_numpy(dtype=bool)
        copies = self._flagged_content(paths)
        return {k for k, p in enumerate(paths) if decided[k] or k in copies or self._is_flagged_gallery_image(p)}

    def _flagged_content(self, paths: list[Path]) -> set[int]:
        """Positions in `paths` whose bytes equal a flagged gallery image's."""
        from tasks.embed.cache import hash_files

        if not self._flagged:
            return set()
        if self._flagged_hashes is None:
            folder = Path(self.index.folder)
            present = [folder / name for name in sorted(self._flagged) if (folder / name).is_file()]
            self._flagged_hashes = set(hash_files(present))
        return {k for k, digest in enumerate(hash_files(paths)) if digest in self._flagged_hashes}

    def _is_flagged_gallery_image(self, path: Path) -> bool:
        return Path(self.index.folder) == path.parent and path.name in self._flagged


_SEARCHERS: dict[tuple[str, str], Searcher] = {}
_SEARCHERS_LOCK = threading.Lock()


def cached_searcher(workspace: Workspace | None = None, index_name: str = "gallery") -> Searcher:
    """One Searcher per (workspace, index) per process: models load once, later calls are only the query."""
    workspace = workspace or Workspace.from_env()
    key = (str(workspace.root), index_name)
    with _SEARCHERS_LOCK:
        if key not in _SEARCHERS:
            _SEARCHERS[key] = Searcher.from_workspace(workspace, index_name)
        return _SEARCHERS[key]


def clear_searcher_cache() -> None:
    """Forget cached searchers (after a new champion or a re-index in the same process)."""
    with _SEARCHERS_LOCK:
        _SEARCHERS.clear()


def get_pictures(query: str, k: int = 5, workspace: Workspace | None = None) -> SearchResult:
    """Top `k` gallery images for `query` with the champion; a query about children is refused with the notice."""
    return cached_searcher(workspace).get_pictures(query, k)


def score(text: str, image: str | Path, workspace: Workspace | None = None) -> PairScore:
    """Relevance in [0, 1] of one (text, image file) pair; refused with the notice if either is about a child."""
    return cached_searcher(workspace).score(text, Path(image))
