"""Work side by side in worker processes on one machine: how many, and one thread each.

On this project's 2-core machines a small network trains faster as two single-thread processes than as one
process on two threads (torch's intra-op threads gain little on small matrices and spin-wait on a busy machine).
Measured on practicum-dev: the detector's trunk maps 1.3-1.9 times as fast, a fine-tune fit 55 s on one thread
against 34 s on two, so two fits side by side take 56-61 s instead of 68 s. The pool is joblib's loky: its workers
never re-run the caller's script (a spawn `ProcessPoolExecutor` re-ran an unguarded one) and are reused between
calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

MAX_WORKERS = 4  # beyond this the pieces of one run are too few to keep more processes busy


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS says, else all of them)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_count(requested: int | None = None, limit: int = MAX_WORKERS) -> int:
    """`requested` if given, else one process a usable core, at most `limit`."""
    if requested is not None:
        return max(1, requested)
    return max(1, min(limit, usable_cores()))


def on_one_thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)` with torch, BLAS and OpenMP on one thread each (run in a worker process); the
    memory the call freed goes back to the OS when it returns (`release_freed_memory`)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            return call(*args, **kwargs)
    finally:
        torch.set_num_threads(before)
        release_freed_memory()


def release_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc's `malloc_trim`; elsewhere only the
    collection). A job that builds and drops many mid-sized arrays (a fine-tune fit turns about 200 MB of maps
    into float32 tensors) otherwise leaves them in the heap: the worker's resident size stays up, and loky restarts
    a worker that grew by more than 300 MB ("A worker stopped while some jobs were given to the executor")."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return
    trim(0)


def side_by_side(calls: Iterable[tuple[Callable[..., T], tuple]], workers: int) -> Iterator[T]:
    """Each `(function, args)` called on one thread in `workers` processes; results in the order given, each as
    soon as it and those before it are done. With one worker the calls run here in turn, on this process's
    threads (no processes started)."""
    if workers <= 1:
        for call, args in calls:
            yield call(*args)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator")
    yield from parallel(delayed(on_one_thread)(call, *args) for call, args in calls)
