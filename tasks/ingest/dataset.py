"""Ingestion: read the five tables and two image folders, check every contract, report what was dropped.

`ingest_dataset` is the plain function; `ingest_task` wraps it for Prefect and writes the prepared
tables into the workspace. Nothing here modifies the raw inputs.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from tasks.ingest.tables import TABLE_FORMATS, TEST_IMAGE_DIR, TRAIN_IMAGE_DIR, caption_image, read_table
from tasks.workspace import dataset_version

# Which folder the `image` column of each table refers to.
TABLE_FOLDERS = {
    "train": TRAIN_IMAGE_DIR,
    "crowd": TRAIN_IMAGE_DIR,
    "expert": TRAIN_IMAGE_DIR,
    "queries": TEST_IMAGE_DIR,
    "test_images": TEST_IMAGE_DIR,
}


@dataclass(frozen=True)
class ImageCheck:
    """What the scan found about one file: its size, pixels, whether it decodes, and why not.

    `decodes` and `megapixels` are None when the file was deliberately not opened (a link out of the
    dataset) or not decoded (over the pixel bound): each of those has its own expectation.
    """

    bytes: int
    inside_dataset: bool
    megapixels: float | None
    decodes: bool | None
    error: str


def check_image_file(path: Path, roots: tuple[Path, ...]) -> ImageCheck:
    """Check one file of an image folder. A symlink must resolve inside one of `roots` or it is not opened;
    the pixel count is read from the header and a file over the bound is not decoded; JPEG draft mode keeps
    the decode check cheap."""
    from tasks.images import ImageTooLargeError, open_image

    if path.is_symlink():
        target = path.resolve()
        if not any(target.is_relative_to(root) for root in roots):
            return ImageCheck(
                0, False, None, None, f"symbolic link to {target}, outside the dataset folder: not opened"
            )
        if not target.is_file():
            return ImageCheck(0, True, None, False, f"broken symbolic link to {target}")
    size = path.stat().st_size
    try:
        with open_image(path) as img:
            megapixels = img.size[0] * img.size[1] / 1e6
            img.draft("RGB", (64, 64))
            img.load()
        return ImageCheck(size, True, megapixels, True, "")
    except ImageTooLargeError as err:
        return ImageCheck(size, True, err.pixels / 1e6, None, str(err))
    except Exception as err:  # PIL raises many types for corrupt data; all mean "does not decode"
        return ImageCheck(size, True, None, False, f"{type(err).__name__}: {err}"[:200])


def dataset_roots(data_dir: Path) -> tuple[Path, ...]:
    """Where the files of a dataset's image folders may lie: the dataset folder, and each image folder's
    target when the folder itself is a symbolic link (to a shared image store, say)."""
    data_dir = Path(data_dir)
    return (data_dir.resolve(), *((data_dir / f).resolve() for f in (TRAIN_IMAGE_DIR, TEST_IMAGE_DIR)))


def scan_image_folder(folder: Path, workers: int | None = None, roots: tuple[Path, ...] | None = None) -> pd.DataFrame:
    """One row per file in `folder` (hidden files left out): name, size, pixels, whether it decodes and why not.

    A symbolic link must resolve inside one of `roots` (default: the folder's parent and the folder itself);
    a link that leads out of them is reported and not opened.
    """
    folder = Path(folder)
    columns = ["folder", "image", "bytes", "inside_dataset", "megapixels", "decodes", "error"]
    if not folder.is_dir():
        return pd.DataFrame({c: [] for c in columns})
    roots = roots or (folder.parent.resolve(), folder.resolve())
    names = sorted(p.name for p in folder.iterdir() if (p.is_file() or p.is_symlink()) and not p.name.startswith("."))
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        checks = list(pool.map(lambda n: check_image_file(folder / n, roots), names))
    frame = pd.DataFrame([asdict(c) for c in checks], columns=columns[2:])
    frame.insert(0, "image", names)
    frame.insert(0, "folder", folder.name)
    return frame.astype({"decodes": object, "megapixels": float})


def image_references(tables: dict[str, pd.DataFrame], folders: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every (table, line, image) that a table names, and whether its folder has that file."""
    parts = []
    for name, frame in tables.items():
        folder = TABLE_FOLDERS[name]
        present = set(folders[folder]["image"])
        refs = frame[["line", "image"]].copy()
        refs.insert(0, "table", TABLE_FORMATS[name].filename)
        refs["folder"] = folder
        refs["found"] = refs["image"].isin(present)
        parts.append(refs)
        if "query_id" in frame and name != "queries":
            # A caption id names the train image it was written for; that image must exist too.
            caps = frame[["line"]].copy()
            caps["image"] = caption_image(frame["query_id"])
            caps.insert(0, "table", TABLE_FORMATS[name].filename + " (query_id)")
            caps["folder"] = TRAIN_IMAGE_DIR
            caps["found"] = caps["image"].isin(set(folders[TRAIN_IMAGE_DIR]["image"]))
            parts.append(caps)
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class IngestSummary:
    data_dir: str
    data_hash: str
    rows: dict[str, int]
    images: dict[str, int]
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_reasons: dict[str, str] = field(default_factory=dict)
    contracts: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The dataset version: names its folder under the workspace's `datasets/`."""
        return dataset_version(self.data_hash)

    def as_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        lines = [f"dataset {self.data_dir} (version {self.version})", "rows:"]
        lines += [f"  {name:<12} {count:>7}" for name, count in self.rows.items()]
        lines += ["images:"] + [f"  {name:<12} {count:>7}" for name, count in self.images.items()]
        lines += ["contracts:"] + [f"  {name:<20} {status}" for name, status in self.contracts.items()]
        if self.dropped:
            lines.append("dropped:")
            lines += [f"  {n:>7} {self.dropped_reasons[k]}" for k, n in self.dropped.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class IngestedDataset:
    """The five tables after their contracts passed, with unknown-text crowd rows dropped."""

    data_dir: Path
    train: pd.DataFrame
    crowd: pd.DataFrame
    expert: pd.DataFrame
    queries: pd.DataFrame
    test_images: pd.DataFrame
    image_files: pd.DataFrame
    summary: IngestSummary

    @property
    def train_image_dir(self) -> Path:
        return self.data_dir / TRAIN_IMAGE_DIR

    @property
    def test_image_dir(self) -> Path:
        return self.data_dir / TEST_IMAGE_DIR

    def texts(self) -> pd.DataFrame:
        """Every known caption: query_id -> query_text, from the train pairs and the test queries."""
        both = pd.concat([self.train[["query_id", "query_text"]], self.queries[["query_id", "query_text"]]])
        return both.drop_duplicates("query_id").reset_index(drop=True)


def dataset_hash(data_dir: Path, image_files: pd.DataFrame) -> str:
    """Content hash of the tables plus the image listing (name and size): names a dataset version."""
    digest = hashlib.sha256()
    for fmt in TABLE_FORMATS.values():
        digest.update(fmt.filename.encode())
        digest.update(hashlib.sha256((Path(data_dir) / fmt.filename).read_bytes()).digest())
    for row in image_files[["folder", "image", "bytes"]].itertuples(index=False):
        digest.update(f"{row.folder}/{row.image}:{row.bytes}\n".encode())
    return digest.hexdigest()


def read_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(fmt, Path(data_dir) / fmt.filename) for name, fmt in TABLE_FORMATS.items()}


def ingest_dataset(data_dir: Path, docs_dir: Path | None = None) -> IngestedDataset:
    """Read, validate and join the raw dataset. Raises TableReadError or ContractError on bad input."""
    from data_contracts.runner import enable_data_docs, enforce
    from data_contracts.tables import IMAGE_FILES_CONTRACT, IMAGE_REFERENCES_CONTRACT, TABLE_CONTRACTS

    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: dataset folder not found")
    if docs_dir is not None:
        enable_data_docs(docs_dir)

    tables = read_tables(data_dir)
    statuses: dict[str, str] = {}
    for name, frame in tables.items():
        contract, prepare = TABLE_CONTRACTS[name]
        checked = prepare(frame) if prepare else frame
        result = enforce(checked, contract, str(data_dir / TABLE_FORMATS[name].filename))
        statuses[contract.name] = f"passed ({result.evaluated} checks)"

    folders = {}
    for folder in (TRAIN_IMAGE_DIR, TEST_IMAGE_DIR):
        if not (data_dir / folder).is_dir():
            raise FileNotFoundError(f"{data_dir / folder}: image folder not found")
        folders[folder] = scan_image_folder(data_dir / folder, roots=dataset_roots(data_dir))
    refs = image_references(tables, folders)
    enforce(refs, IMAGE_REFERENCES_CONTRACT, str(data_dir))
    statuses[IMAGE_REFERENCES_CONTRACT.name] = f"passed ({len(refs)} references)"
    image_files = pd.concat(folders.values(), ignore_index=True)
    enforce(image_files, IMAGE_FILES_CONTRACT, str(data_dir))
    statuses[IMAGE_FILES_CONTRACT.name] = f"passed ({len(image_files)} files)"

    known = set(tables["train"]["query_id"]) | set(tables["queries"]["query_id"])
    crowd = tables["crowd"]
    unknown = ~crowd["query_id"].isin(known)
    dropped = {"crowd_unknown_text": int(unknown.sum())}
    reasons = {"crowd_unknown_text": "crowd rows whose query_id has no text in train_dataset.csv or test_queries.csv"}
    summary = IngestSummary(
        data_dir=str(data_dir),
        data_hash=dataset_hash(data_dir, image_files),
        rows={name: len(frame) for name, frame in tables.items()},
        images={folder: len(frame) for folder, frame in folders.items()},
        dropped=dropped,
        dropped_reasons=reasons,
        contracts=statuses,
    )
    return IngestedDataset(
        data_dir=data_dir,
        train=tables["train"],
        crowd=crowd[~unknown].reset_index(drop=True),
        expert=tables["expert"],
        queries=tables["queries"],
        test_images=tables["test_images"],
        image_files=image_files,
        summary=summary,
    )


def write_prepared(dataset: IngestedDataset, out_dir: Path) -> Path:
    """Write the validated tables as Parquet into a dataset-version folder, atomically."""
    from tasks.workspace import atomic_dir, write_json_atomic

    with atomic_dir(out_dir) as tmp:
        for name in ("train", "crowd", "expert", "queries", "test_images", "image_files"):
            getattr(dataset, name).to_parquet(tmp / f"{name}.parquet", index=False)
        write_json_atomic(tmp / "summary.json", dataset.summary.as_dict())
    return out_dir
