"""Fresh one-thread worker processes for a stage's independent jobs (walk-forward fits, analysis layers), and
the same one-thread limit for work that stays in this process (:func:`one_thread`).

Two one-thread processes beat one two-thread process on a small machine, and single-threaded work gives the
same numbers whatever the number of jobs. loky starts fresh interpreters that do not re-import the caller's
main module (no ``__main__`` guard needed); each receives the shared state once, through the initializer, and
then only the small job descriptions.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings

TRACKER_QUIET = "ignore:resource_tracker:UserWarning"
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_STATE = None


@contextlib.contextmanager
def one_thread(blas: bool = True):
    """Run the body with one torch intra-op thread (and, with ``blas``, one BLAS/OpenMP thread), then restore.

    ``blas=False`` for tight loops: threadpoolctl looks up the loaded libraries on every entry."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if blas:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def one_thread_pool(n_jobs: int, state):
    """A loky executor of ``n_jobs`` processes, each holding ``state`` (read it with :func:`worker_state`).

    On exit, also by an exception or a stop, the workers are killed: queued jobs are not run first."""
    from joblib.externals.loky import get_reusable_executor

    # loky's resource tracker (a process started with this interpreter's -W options) warns about the semaphores of
    # workers killed on a stop, after the stage's last line; killing them is the point, so it is told to stay quiet
    if TRACKER_QUIET not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_QUIET)
    pool = get_reusable_executor(n_jobs, initializer=_init, initargs=(state, _hf_verbosity()), reuse=False,
                                 env=ONE_THREAD_ENV)
    pool.map = functools.partial(_map_never_cancelling, pool)
    try:
        with warnings.catch_warnings():
            # a worker loky replaced anyway (see _init) runs the initializer again and takes the queued jobs;
            # a crashed worker still raises
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given",
                                    category=UserWarning)
            yield pool
    finally:
        with _manager_races_quiet():
            pool.shutdown(wait=True, kill_workers=True)


@contextlib.contextmanager
def _manager_races_quiet():
    """While the pool is shut down with its workers killed, loky's manager thread can trip over its own
    bookkeeping (a work item the shutdown already failed: ``KeyError``, ``InvalidStateError``) and print a
    traceback for jobs nobody waits on. Exceptions of that one thread are dropped during the shutdown (logged at
    debug level); every other thread's still reach the usual hook."""
    import logging
    import threading

    previous = threading.excepthook

    def hook(args):
        if args.thread is not None and args.thread.name == "ExecutorManagerThread":
            logging.getLogger("finsae").debug("loky manager thread during shutdown: %r", args.exc_value)
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def _map_never_cancelling(pool, fn, *iterables):
    """``Executor.map`` without its cancel-on-exit: every job is submitted at once, results come in order. The
    standard ``map`` cancels the queued futures when its caller stops (a signal, an error), and loky's shutdown
    then fails to fail those futures again (``InvalidStateError`` in its manager thread), which kills that
    thread before it kills the workers: the stage would hang on its workers instead of ending."""
    futures = [pool.submit(fn, *args) for args in zip(*iterables, strict=True)]
    return (f.result() for f in futures)


def _hf_verbosity() -> int | None:
    """This process's transformers log level (None when transformers is not loaded): a worker takes it, so a
    stage that silenced transformers' model-load reports is not noisy in its workers."""
    if "transformers" not in sys.modules:
        return None
    from transformers.utils import logging as hf_logging

    return hf_logging.get_verbosity()


def _init(state, hf_verbosity: int | None = None) -> None:
    from threadpoolctl import threadpool_limits

    global _STATE
    _STATE = state
    threadpool_limits(1)  # for the worker's lifetime
    if hf_verbosity is not None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(hf_verbosity)
    # loky replaces a worker whose RSS grew by 300 MB since its first job, taking it for a leak; here RSS grows
    # by design (file-backed pages of the memory-mapped stores a job reads count in it), and each replacement
    # costs a fresh interpreter and the state sent again
    from joblib.externals.loky import process_executor

    if hasattr(process_executor, "_MAX_MEMORY_LEAK_SIZE"):
        process_executor._MAX_MEMORY_LEAK_SIZE = max(process_executor._MAX_MEMORY_LEAK_SIZE, 16 * 2**30)


def worker_state():
    """The ``state`` given to :func:`one_thread_pool`, inside one of its workers."""
    return _STATE
