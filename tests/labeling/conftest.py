"""Shared fixtures of the labeling tests (helpers that write analysis artifacts: ``fixtures.py``)."""

import pytest


@pytest.fixture(scope="session")
def embedder():
    from finsae.labeling.embed import SentenceEmbedder

    return SentenceEmbedder()
