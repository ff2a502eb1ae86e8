"""Fresh one-thread worker processes for a stage's independent jobs (walk-forward fits, analysis layers).

Two one-thread processes beat one two-thread process on a small machine, and single-threaded work gives the
same numbers whatever the number of jobs. loky starts fresh interpreters that do not re-import the caller's
main module (no ``__main__`` guard needed); each receives the shared state once, through the initializer, and
then only the small job descriptions.
"""

from __future__ import annotations

import contextlib

ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_STATE = None


@contextlib.contextmanager
def one_thread_pool(n_jobs: int, state):
    """A loky executor of ``n_jobs`` processes, each holding ``state`` (read it with :func:`worker_state`).

    On exit, also by an exception or a stop, the workers are killed: queued jobs are not run first."""
    from joblib.externals.loky import get_reusable_executor

    pool = get_reusable_executor(n_jobs, initializer=_init, initargs=(state,), reuse=False, env=ONE_THREAD_ENV)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, kill_workers=True)


def _init(state) -> None:
    from threadpoolctl import threadpool_limits

    global _STATE
    _STATE = state
    threadpool_limits(1)  # for the worker's lifetime


def worker_state():
    """The ``state`` given to :func:`one_thread_pool`, inside one of its workers."""
    return _STATE
