"""Fixtures of the trading tests: real StockNet prices and tweets of a few small tickers, a tiny random BERT
and a tiny SAE (shapes from configs, never hard-coded to the demo SAEs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # ci_rules

@pytest.fixture(scope="session")
def small_tickers() -> list[str]:
    """Three tickers with few tweets (65, 89, 91 raw-text rows): real data, seconds to encode."""
    return ["PTR", "REX", "BBL"]


@pytest.fixture(scope="session")
def tiny_model():
    from finsae.models import get_spec, load_model

    return load_model(get_spec("tiny"))


@pytest.fixture(scope="session")
def tiny_sae(tiny_model):
    import torch

    from finsae.sae import SaeTrainConfig, TopKSAE

    torch.manual_seed(0)
    cfg = SaeTrainConfig(expansion_factor=4, k=4).sae_config(tiny_model.d_model, 0)
    return TopKSAE(cfg)
