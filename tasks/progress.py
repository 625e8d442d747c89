"""Progress of long steps as log lines a person can watch in the Prefect dashboard, with or without a terminal.

tqdm bars only show on a terminal; these lines go to Prefect's run logger inside a flow or task run (so they
reach the run's logs in the UI) and to an ordinary `logging` logger elsewhere.
"""

from __future__ import annotations

import logging
import time
from typing import Any

# Below this many rows a step is quick enough that progress lines would only be noise (one search query, say).
MIN_ROWS = 50
# One line at least every this share of the rows.
STEP = 0.1


def run_logger(fallback: logging.Logger) -> logging.Logger | logging.LoggerAdapter[Any]:
    """Prefect's logger of the current flow or task run, or `fallback` outside a run."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return fallback


class ProgressLog:
    """Counts rows done out of `total` and logs a line each time another tenth is done:
    `embedding images with clip: 200/1000 rows (20%) in 6.1 s, 32.8 rows/s`.

    Callers that process rows in batches should use `batch_size` so one batch never spans two tenths;
    then every tenth gets its own line."""

    def __init__(
        self,
        what: str,
        total: int,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        min_rows: int = MIN_ROWS,
    ):
        self.what = what
        self.total = total
        self.done = 0
        self.enabled = total >= max(min_rows, 1)
        self.logger = logger if logger is not None else run_logger(logging.getLogger(__name__))
        self._tenth = 1  # the next tenth to report
        self._created = time.perf_counter()
        self._started: float | None = None

    def batch_size(self, wanted: int) -> int:
        """`wanted`, made no larger than a tenth of the total while lines are logged. Work starts here: the
        clock runs from the first call (a stage may build several logs before it starts on each)."""
        if self._started is None:
            self._started = time.perf_counter()
        if not self.enabled:
            return wanted
        return max(1, min(wanted, int(self.total * STEP)))

    def update(self, rows: int) -> None:
        """`rows` more are done."""
        self.reach(self.done + rows)

    def reach(self, done: int) -> None:
        """At least `done` rows are done (a no-op when the count is already there): for work that reports
        only when whole chunks come back, e.g. shards from a cluster."""
        if done <= self.done:
            return
        self.done = min(done, self.total)
        if not self.enabled or self.done * 10 < self._tenth * self.total:
            return
        while self._tenth <= 10 and self.done * 10 >= self._tenth * self.total:
            self._tenth += 1
        seconds = time.perf_counter() - (self._started if self._started is not None else self._created)
        rate = self.done / seconds if seconds > 0 else float("inf")
        self.logger.info(
            "%s: %d/%d rows (%d%%) in %.1f s, %.1f rows/s",
            self.what,
            self.done,
            self.total,
            100 * self.done // self.total,
            seconds,
            rate,
        )
