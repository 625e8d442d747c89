"""The ratings inbox: good batches merge once, bad ones go to quarantine with a reason, nothing is lost."""

import pandas as pd

from tasks.ingest.tables import CROWD, EXPERT, read_table
from tasks.ratings.inbox import load_ratings_store, merge_ratings, process_inbox

IMAGES = {"a.jpg", "b.jpg"}
KNOWN = {"a.jpg#0", "b.jpg#1"}


def drop(workspace, name, content):
    path = workspace.inbox / name
    path.write_text(content)
    return path


def test_good_bad_and_duplicate_batches(workspace):
    drop(workspace, "expert_2026-11.tsv", "a.jpg\tb.jpg#1\t1\t2\t2\nb.jpg\ta.jpg#0\t3\t4\t4\n")
    drop(workspace, "crowd_bad.tsv", "a.jpg\tb.jpg#1\t1.7\t3\t0\n")
    drop(workspace, "crowd_good.tsv", "a.jpg\ta.jpg#0\t1.0\t3\t0\nb.jpg\tzzz.jpg#4\t0.0\t0\t3\n")
    outcomes = {o.file: o for o in process_inbox(workspace, IMAGES, KNOWN)}
    assert outcomes["expert_2026-11.tsv"].status == "merged" and outcomes["expert_2026-11.tsv"].rows == 2
    assert outcomes["crowd_good.tsv"].status == "merged" and outcomes["crowd_good.tsv"].dropped_unknown_text == 1
    bad = outcomes["crowd_bad.tsv"]
    assert bad.status == "quarantined" and "share_yes" in bad.reason and "line 1" in bad.reason
    quarantined = list(workspace.quarantine.glob("*crowd_bad.tsv"))
    assert len(quarantined) == 1 and quarantined[0].read_text() == "a.jpg\tb.jpg#1\t1.7\t3\t0\n"
    assert "share_yes" in quarantined[0].with_name(quarantined[0].name + ".reason.txt").read_text()
    assert not [p for p in workspace.inbox.iterdir() if p.is_file()]

    # the same expert file delivered again is recognised and not merged twice
    drop(workspace, "expert_again.tsv", "a.jpg\tb.jpg#1\t1\t2\t2\nb.jpg\ta.jpg#0\t3\t4\t4\n")
    again = process_inbox(workspace, IMAGES, KNOWN)
    assert [o.status for o in again] == ["duplicate"]
    store = load_ratings_store(workspace)
    assert len(store.expert) == 2 and len(store.crowd) == 1


def test_unknown_image_quarantines_the_batch(workspace):
    drop(workspace, "crowd_x.tsv", "nope.jpg\ta.jpg#0\t1.0\t3\t0\n")
    (outcome,) = process_inbox(workspace, IMAGES, KNOWN)
    assert outcome.status == "quarantined" and "nope.jpg" in outcome.reason


def test_unreadable_file_quarantined(workspace):
    (workspace.inbox / "expert_latin1.tsv").write_bytes("a.jpg\tb.jpg#1\t1\t2\t2 caf\xe9\n".encode("latin-1"))
    (outcome,) = process_inbox(workspace, IMAGES, KNOWN)
    assert outcome.status == "quarantined" and "UTF-8" in outcome.reason


def test_merge_takes_newest_rating(tmp_path):
    base_path = tmp_path / "ExpertAnnotations.tsv"
    base_path.write_text("a.jpg\tb.jpg#1\t1\t1\t1\nb.jpg\ta.jpg#0\t2\t2\t2\n")
    base = read_table(EXPERT, base_path)
    extra = pd.DataFrame(
        {"image": ["a.jpg"], "query_id": ["b.jpg#1"], "expert_1": [4.0], "expert_2": [4.0], "expert_3": [4.0]}
    )
    merged = merge_ratings(base, extra, EXPERT.columns)
    assert len(merged) == 2
    assert merged.set_index("query_id").loc["b.jpg#1", "expert_1"] == 4.0
    assert merge_ratings(base, pd.DataFrame(), CROWD.columns) is base


def test_concurrent_inbox_runs_merge_each_file_once(workspace):
    import threading

    for k in range(6):
        drop(workspace, f"crowd_{k}.tsv", f"a.jpg\ta.jpg#0\t{k / 6:.6g}\t{k}\t{6 - k}\n")
    results, errors = [], []

    def run():
        try:
            results.extend(process_inbox(workspace, IMAGES, KNOWN))
        except Exception as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(o.file for o in results if o.status == "merged") == [f"crowd_{k}.tsv" for k in range(6)]
    assert len(load_ratings_store(workspace).crowd) == 6


GOOD_EXPERT = "a.jpg\tb.jpg#1\t1\t2\t2\nb.jpg\ta.jpg#0\t3\t4\t4\n"


def test_batch_id_ignores_line_endings_bom_trailing_whitespace_and_blank_lines(tmp_path):
    import hashlib

    from tasks.ratings.inbox import batch_id

    variants = {
        "lf.tsv": GOOD_EXPERT,
        "crlf.tsv": GOOD_EXPERT.replace("\n", "\r\n"),
        "cr.tsv": GOOD_EXPERT.replace("\n", "\r"),
        "bom.tsv": "\ufeff" + GOOD_EXPERT,
        "spaces.tsv": GOOD_EXPERT.replace("\n", "  \t\n"),
        "blank.tsv": "\n" + GOOD_EXPERT.replace("\n", "\n\n", 1) + "\n\n",
        "no-final-newline.tsv": GOOD_EXPERT.rstrip("\n"),
    }
    ids = set()
    for name, content in variants.items():
        (tmp_path / name).write_bytes(content.encode())
        ids.add(batch_id(tmp_path / name))
    assert len(ids) == 1
    # a plain LF file keeps the id it had when ids hashed the raw bytes, so old store batches still match
    assert ids == {hashlib.sha256(GOOD_EXPERT.encode()).hexdigest()[:20]}
    (tmp_path / "other.tsv").write_text(GOOD_EXPERT.replace("\t4\t4", "\t4\t3"))
    assert batch_id(tmp_path / "other.tsv") not in ids


def test_crlf_copy_of_a_merged_file_is_a_duplicate(workspace):
    drop(workspace, "expert_2026-11.tsv", GOOD_EXPERT)
    assert [o.status for o in process_inbox(workspace, IMAGES, KNOWN)] == ["merged"]
    (workspace.inbox / "expert_2026-11 (windows copy).tsv").write_bytes(GOOD_EXPERT.replace("\n", "\r\n").encode())
    (outcome,) = process_inbox(workspace, IMAGES, KNOWN)
    assert outcome.status == "duplicate"
    assert len(load_ratings_store(workspace).expert) == 2
    assert list(workspace.inbox_archive.glob("*duplicate*windows copy*"))  # archived, not deleted


def test_unexpected_names_and_folders_are_quarantined_with_a_reason(workspace):
    drop(workspace, "ratings.csv", GOOD_EXPERT)
    (workspace.inbox / "batch-2026-11").mkdir()
    (workspace.inbox / "batch-2026-11" / "expert.tsv").write_text(GOOD_EXPERT)
    drop(workspace, ".expert.tsv.part", GOOD_EXPERT)  # a copy in progress: left alone
    outcomes = {o.file: o for o in process_inbox(workspace, IMAGES, KNOWN)}
    assert set(outcomes) == {"ratings.csv", "batch-2026-11"}
    assert outcomes["ratings.csv"].status == "quarantined"
    assert "unexpected file name 'ratings.csv'" in outcomes["ratings.csv"].reason
    assert "\n" not in outcomes["ratings.csv"].reason
    assert outcomes["batch-2026-11"].status == "quarantined" and "not a file" in outcomes["batch-2026-11"].reason
    (moved,) = workspace.quarantine.glob("*-ratings.csv")
    assert moved.read_text() == GOOD_EXPERT, "moved as it was, nothing lost"
    assert "unexpected file name" in moved.with_name(moved.name + ".reason.txt").read_text()
    assert (next(workspace.quarantine.glob("*-batch-2026-11")) / "expert.tsv").read_text() == GOOD_EXPERT
    assert sorted(p.name for p in workspace.inbox.iterdir()) == [".expert.tsv.part", "archive"]
    assert load_ratings_store(workspace).expert.empty


def test_blank_first_line_does_not_change_the_kind(workspace):
    drop(workspace, "batch_7.tsv", "\n" + GOOD_EXPERT)  # no kind in the name: decided by the first non-blank line
    (outcome,) = process_inbox(workspace, IMAGES, KNOWN)
    assert (outcome.status, outcome.kind) == ("merged", "expert")


def test_zero_rater_crowd_row_quarantines_the_batch_naming_its_line(workspace):
    drop(workspace, "crowd_z.tsv", "a.jpg\ta.jpg#0\t1.0\t3\t0\n\nb.jpg\tb.jpg#1\t0\t0\t0\n")
    (outcome,) = process_inbox(workspace, IMAGES, KNOWN)
    assert outcome.status == "quarantined" and "at least one rater" in outcome.reason and "line 3" in outcome.reason
