"""Fixtures shared by the analysis tests (the helper modules beside this file hold the planted data)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One intra-op thread while a test trains a tiny SAE: faster, and immune to a busy machine (a parallel
    region stalls whenever one of its threads is descheduled). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base():
    """The causal tests' base model: planted_causal.py's tiny random BERT classifier, built once a module."""
    from planted_causal import planted_base

    return planted_base()
