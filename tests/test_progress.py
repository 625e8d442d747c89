"""Progress lines: one per tenth of the rows, silent on short work, through Prefect's run logger inside a run."""

from __future__ import annotations

import logging
import re

from prefect import flow

from tasks.progress import ProgressLog, run_logger

LINE = re.compile(r"^work: (\d+)/(\d+) rows \((\d+)%\) in [\d.]+ s, [\d.]+ rows/s$")


def lines(caplog) -> list[re.Match]:
    return [m for r in caplog.records if (m := LINE.match(r.getMessage()))]


def test_a_line_per_tenth_when_batches_follow_batch_size(caplog):
    caplog.set_level(logging.INFO)
    total = 95
    log = ProgressLog("work", total, logging.getLogger("test.progress"))
    batch = log.batch_size(32)
    assert batch == 9  # a tenth of 95, so no batch spans two tenths
    done = 0
    while done < total:
        n = min(batch, total - done)
        log.update(n)
        done += n
    found = lines(caplog)
    assert [int(m[3]) // 10 for m in found] == list(range(1, 11))  # 10%, 20%, ..., 100%
    assert int(found[-1][1]) == total


def test_chunks_that_span_tenths_give_one_line_each_and_reach_is_idempotent(caplog):
    caplog.set_level(logging.INFO)
    log = ProgressLog("work", 100, logging.getLogger("test.progress"))
    log.reach(50)
    log.reach(50)  # the same count again: nothing new to say
    log.reach(40)
    log.reach(100)
    assert [m[1] for m in lines(caplog)] == ["50", "100"]


def test_short_work_logs_nothing(caplog):
    caplog.set_level(logging.INFO)
    log = ProgressLog("work", 3, logging.getLogger("test.progress"))
    assert log.batch_size(256) == 256
    log.update(3)
    assert not lines(caplog)


def test_run_logger_is_prefects_inside_a_run_and_the_fallback_outside(prefect_harness):
    fallback = logging.getLogger("test.progress")
    assert run_logger(fallback) is fallback

    @flow
    def inside() -> str:
        return run_logger(fallback).name  # type: ignore[union-attr]

    assert inside() == "prefect.flow_runs"


def test_the_clock_starts_with_the_work_not_with_the_log(caplog):
    import time

    caplog.set_level(logging.INFO)
    log = ProgressLog("work", 100, logging.getLogger("test.progress"))
    time.sleep(0.3)  # e.g. the stage embeds its texts before it starts on its images
    log.batch_size(10)
    log.update(100)
    (line,) = [r.getMessage() for r in caplog.records if LINE.match(r.getMessage())]
    assert float(line.split(" in ")[1].split(" s,")[0]) < 0.3
