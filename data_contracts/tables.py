"""Contracts for the five input tables and the two image folders."""

from __future__ import annotations

from collections.abc import Callable

import great_expectations.expectations as gxe
import pandas as pd

from data_contracts.runner import Contract, why
from tasks.images import MAX_IMAGE_PIXELS
from tasks.ingest.tables import JPEG_EXTENSIONS, MAX_TEXT_CHARS, caption_image

# A file name: no folder part, no '#' (it separates the caption number), no markup or quote characters and no
# control characters. Flickr8k names are `<digits>_<hex>.jpg`; values are escaped wherever they are shown anyway.
_NAME = rf"[^/\\#<>\"\x00-\x1f\x7f]+\.(?:{'|'.join(JPEG_EXTENSIONS)})"
IMAGE_NAME = rf"^{_NAME}$"
QUERY_ID = rf"^{_NAME}#[0-9]+$"


def _image_column(column: str = "image") -> list:
    return [
        # Rows without an image cannot be joined to pixels.
        why(gxe.ExpectColumnValuesToNotBeNull(column=column), "every row names an image"),
        # Names are file names in the image folder, not paths: no traversal, no captions ids.
        why(
            gxe.ExpectColumnValuesToMatchRegex(column=column, regex=IMAGE_NAME),
            "an image is a .jpg file name without folders, '#', markup or control characters",
        ),
    ]


def _query_id_column() -> list:
    return [
        # query_id encodes which image the caption was written for; later stages parse it.
        why(gxe.ExpectColumnValuesToMatchRegex(column="query_id", regex=QUERY_ID), "query_id is <image>.jpg#<n>"),
    ]


def _pair_unique() -> list:
    return [
        # One rating or one pair per (image, query_id): duplicates would double-weight a pair.
        why(gxe.ExpectCompoundColumnsToBeUnique(column_list=["image", "query_id"]), "one row per (image, query_id)"),
    ]


def _text_column(column: str = "query_text") -> list:
    return [
        # An empty caption embeds to noise and cannot be screened for child content.
        why(gxe.ExpectColumnValueLengthsToBeBetween(column=column, min_value=1), "no empty texts"),
        # A runaway text passes everything else and then crashes the text screen (spaCy E088) mid-run.
        why(
            gxe.ExpectColumnValueLengthsToBeBetween(column=column, max_value=MAX_TEXT_CHARS),
            f"texts of at most {MAX_TEXT_CHARS} characters",
        ),
    ]


def _train() -> list:
    return _image_column() + _query_id_column() + _text_column() + _pair_unique()


def _crowd() -> list:
    rating_checks = []
    for column in ("share_yes", "count_yes", "count_no"):
        # A blank or non-numeric rating would silently become a missing target.
        rating_checks.append(why(gxe.ExpectColumnValuesToNotBeNull(column=column), "ratings are numbers"))
    return (
        _image_column()
        + _query_id_column()
        + _pair_unique()
        + rating_checks
        + [
            # share_yes is the fraction of raters who said yes: the training target for crowd pairs.
            why(gxe.ExpectColumnValuesToBeBetween(column="share_yes", min_value=0, max_value=1), "share in [0, 1]"),
            # Counts of raters are whole and non-negative.
            why(gxe.ExpectColumnValuesToBeBetween(column="count_yes", min_value=0), "count_yes >= 0"),
            why(gxe.ExpectColumnValuesToBeBetween(column="count_no", min_value=0), "count_no >= 0"),
            why(gxe.ExpectColumnValuesToBeInSet(column="counts_whole", value_set=[True]), "counts are integers"),
            # With no rater the share is 0/0: whatever share_yes says, it measures nothing.
            why(
                gxe.ExpectColumnValuesToBeInSet(column="has_raters", value_set=[True]),
                "at least one rater: count_yes + count_no >= 1",
            ),
            # share must agree with the counts, or one of the two columns was shifted or mistyped.
            why(
                gxe.ExpectColumnValuesToBeInSet(column="share_matches_counts", value_set=[True]),
                "share_yes = count_yes / (count_yes + count_no)",
            ),
        ]
    )


def _prepare_crowd(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    yes, no = out["count_yes"], out["count_no"]
    out["counts_whole"] = ((yes % 1 == 0) & (no % 1 == 0)) | yes.isna() | no.isna()
    total = yes + no
    out["has_raters"] = (total >= 1) | total.isna()  # missing counts are reported by their own check
    share = (yes / total.where(total > 0)).fillna(0.0)
    out["share_matches_counts"] = ((share - out["share_yes"]).abs() <= 0.011) | out["share_yes"].isna() | total.isna()
    return out


def _expert() -> list:
    checks = _image_column() + _query_id_column() + _pair_unique()
    for column in ("expert_1", "expert_2", "expert_3"):
        # Experts answer on a 1..4 scale; anything else is a typo or a shifted column.
        checks.append(why(gxe.ExpectColumnValuesToNotBeNull(column=column), "expert ratings are numbers"))
        checks.append(
            why(
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[1, 2, 3, 4]),
                "expert ratings are integers 1..4",
            )
        )
    return checks


def _queries() -> list:
    return (
        _image_column()
        + _query_id_column()
        + _text_column()
        + [
            # Each test query is evaluated once; a repeated id would count twice in retrieval metrics.
            why(gxe.ExpectColumnValuesToBeUnique(column="query_id"), "query_id unique"),
            # The relevant image of a test query is the one its caption was written for.
            why(
                gxe.ExpectColumnValuesToBeInSet(column="names_own_image", value_set=[True]),
                "query_id names the row's image",
            ),
        ]
    )


def _prepare_queries(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["names_own_image"] = caption_image(out["query_id"]) == out["image"]
    return out


def _test_images() -> list:
    return _image_column() + [
        # The gallery lists each image once.
        why(gxe.ExpectColumnValuesToBeUnique(column="image"), "image unique"),
    ]


def _image_references() -> list:
    return [
        # A row that names an image not in its folder would train or evaluate on nothing.
        why(
            gxe.ExpectColumnValuesToBeInSet(column="found", value_set=[True]),
            "every referenced image exists in its folder",
        ),
    ]


def _image_files() -> list:
    return [
        # A link out of the dataset would read (and show in reports) a file nobody delivered as data.
        why(
            gxe.ExpectColumnValuesToBeInSet(column="inside_dataset", value_set=[True]),
            "image files lie inside the dataset folder (a symbolic link may not point out of it)",
        ),
        # A huge image passes every other check and then takes gigabytes to decode; checked from the header.
        why(
            gxe.ExpectColumnValuesToBeBetween(column="megapixels", max_value=MAX_IMAGE_PIXELS / 1e6),
            f"images of at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels",
        ),
        # A truncated or corrupt file would crash the embedding stage far from its cause. Files not opened
        # for one of the reasons above have no value here (null), so each file fails one check only.
        why(gxe.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True]), "every image file decodes"),
    ]


TRAIN_CONTRACT = Contract("train_dataset", _train)
CROWD_CONTRACT = Contract("crowd_annotations", _crowd)
EXPERT_CONTRACT = Contract("expert_annotations", _expert)
QUERIES_CONTRACT = Contract("test_queries", _queries)
TEST_IMAGES_CONTRACT = Contract("test_images", _test_images)
IMAGE_REFERENCES_CONTRACT = Contract("image_references", _image_references, index=("table", "line", "image", "folder"))
IMAGE_FILES_CONTRACT = Contract("image_files", _image_files, index=("folder", "image", "error"))

TABLE_CONTRACTS: dict[str, tuple[Contract, Callable[[pd.DataFrame], pd.DataFrame] | None]] = {
    # table name -> (contract, function adding the derived columns it checks)
    "train": (TRAIN_CONTRACT, None),
    "crowd": (CROWD_CONTRACT, _prepare_crowd),
    "expert": (EXPERT_CONTRACT, None),
    "queries": (QUERIES_CONTRACT, _prepare_queries),
    "test_images": (TEST_IMAGES_CONTRACT, None),
}
