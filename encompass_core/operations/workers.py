"""One job per image in a bounded thread pool, results written back in batches, Ctrl-C safe.

Bulk operations (clone, customize, uncustomize) take all their images in one transaction,
then hand each to :func:`run_jobs`. Finished jobs are written back every ``BATCH_SECONDS``
(one store transaction for many images), so bookkeeping stays small next to the work. On
Ctrl-C the jobs not begun are cancelled, the running ones are let finish, and the caller is
told which images were never begun: none is left in a transitional state.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import EncompassError

BATCH_SECONDS = 0.25  # how often finished jobs are written back, at the least
#: A write-back may take this share of the run at most: the next one waits this many times as
#: long as the last took (a repository whose writes are slow is written less often).
WRITE_BACK_SHARE = 0.1

#: (image name, the job's result or None, the error or None, the error's exit code or 0)
Finished = tuple[str, Any, str | None, int]

INTERRUPTED = "interrupted by the user (Ctrl-C)"


def hold_back_sigint() -> Callable[[], bool]:
    """Hold back SIGINT until the returned function is called; it says whether one came.

    Used from the transaction that takes the images until every job is submitted: an
    interrupt in between would strand images in their transitional state.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: False
    came: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: came.append(signum))
    released: list[bool] = []

    def release() -> bool:
        if not released:  # idempotent: called again on the way out
            released.append(True)
            signal.signal(signal.SIGINT, previous)
        return bool(came)

    return release


def _outcome(name: str, future: cf.Future, interrupted: bool) -> Finished:
    try:
        return name, future.result(), None, 0
    except EncompassError as exc:
        error, code = str(exc), exc.exit_code
    except Exception as exc:  # noqa: BLE001 - one image's failure is its own
        error, code = f"{type(exc).__name__}: {exc}", EncompassError.exit_code
    return name, None, f"{INTERRUPTED}: {error}" if interrupted else error, code


def run_jobs(
    names: Sequence[str],
    job: Callable[[str], Any],
    workers: int,
    write_back: Callable[[list[Finished]], None],
    prefix: str,
    held_back: Callable[[], bool] | None = None,
) -> list[str] | None:
    """Run ``job(name)`` for every name, at most ``workers`` at once.

    ``write_back`` receives the finished jobs in batches. ``held_back`` (from
    :func:`hold_back_sigint`) is released once every job is submitted. Returns None when all
    ran, or — after Ctrl-C — the names whose job never began (the others were written back).
    """
    executor = cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=prefix)
    futures: dict[cf.Future, str] = {}
    finished: list[Finished] = []
    handled: set[str] = set()  # collected into `finished` (written back, or about to be)

    interval = BATCH_SECONDS

    def flush() -> None:
        nonlocal interval
        if finished:
            started = time.monotonic()
            write_back(list(finished))
            finished.clear()
            took = time.monotonic() - started
            interval = max(BATCH_SECONDS, took / WRITE_BACK_SHARE)

    last_flush = time.monotonic()
    # Finished futures arrive here: waiting on one queue costs the same whatever the number of
    # jobs, where cf.wait() would hook every pending future on each call (quadratic in them),
    # holding the GIL that the workers need between their system calls.
    completed: queue.SimpleQueue[cf.Future] = queue.SimpleQueue()
    try:
        for name in names:
            future = executor.submit(job, name)
            futures[future] = name
            future.add_done_callback(completed.put)
        if held_back is not None and held_back():
            raise KeyboardInterrupt
        remaining = len(futures)
        while remaining:
            done: list[cf.Future] = []
            try:
                done.append(completed.get(timeout=BATCH_SECONDS))
                while True:
                    done.append(completed.get_nowait())
            except queue.Empty:
                pass
            for future in done:
                remaining -= 1
                handled.add(futures[future])
                finished.append(_outcome(futures[future], future, False))
            if not remaining or time.monotonic() - last_flush >= interval:
                flush()
                last_flush = time.monotonic()
    except KeyboardInterrupt:
        executor.shutdown(wait=True, cancel_futures=True)  # running jobs finish, the rest never begin
        for future, name in futures.items():
            if not future.cancelled() and name not in handled:
                handled.add(name)
                finished.append(_outcome(name, future, True))
        flush()
        return [name for name in names if name not in handled]
    finally:
        if held_back is not None:
            held_back()
        executor.shutdown(wait=True)
    return None
