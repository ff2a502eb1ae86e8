"""The stages' one-thread worker processes (finsae.workers) take the parent's transformers log level: a stage
that silenced transformers' model-load reports (finsae.glue.console.quiet_console) is quiet in its workers."""

import pytest

from finsae.workers import one_thread_pool


def _worker_verbosity(_):
    from transformers.utils import logging as hf_logging

    return hf_logging.get_verbosity()


@pytest.mark.parametrize("level", ["error", "info"])
def test_workers_take_the_parents_transformers_log_level(level):
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    try:
        getattr(hf_logging, f"set_verbosity_{level}")()
        with one_thread_pool(1, None) as pool:
            assert list(pool.map(_worker_verbosity, [0])) == [hf_logging.get_verbosity()]
    finally:
        hf_logging.set_verbosity(before)
