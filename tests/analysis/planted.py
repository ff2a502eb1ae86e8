"""Planted truth shared by the analysis tests on synthetic inputs: an SAE with a given dictionary, held-out
documents in four equal groups with their token rows, and the warm-start tests' concept tokens and training
budgets."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from finsae.analysis.heldout import HeldoutSet
from finsae.data.corpus import Corpus
from finsae.sae import SaeConfig, SaeTrainConfig, TopKSAE

WARM_CFG = SaeTrainConfig(expansion_factor=2, k=3, batch_size=128, tokens=128 * 150, lr=1e-2,
                          init_sample=2048)
"""The warm-start tests' SAEs, and the budget of each continued run (domain, controls)."""
WARM_START_CFG = SaeTrainConfig(expansion_factor=2, k=3, batch_size=128, tokens=128 * 500, lr=1e-2,
                                init_sample=2048)
"""The base SAE that the warm-start tests continue: trained to convergence first."""


def tied_sae(dec: torch.Tensor, k: int, seed: int) -> TopKSAE:
    """A top-``k`` SAE whose decoder and encoder rows are ``dec`` ([latents, d_in]): latent i reads and writes
    the direction ``dec[i]``, on raw (not normalised) inputs."""
    n_latents, d_in = dec.shape
    sae = TopKSAE(SaeConfig(d_in=d_in, expansion_factor=n_latents // d_in, k=k, seed=seed,
                            normalize_input=False))
    with torch.no_grad():
        sae.W_dec.copy_(dec)
        sae.W_enc.copy_(dec)
    sae.initialized = True
    return sae.eval()


class PlantedDocs(NamedTuple):
    held: HeldoutSet
    """``n_docs`` synthetic documents in four equal groups: financial, general, ag_business, ag_other."""
    doc_of_row: np.ndarray
    """Each token row's document (``per_doc`` rows a document, in order)."""
    char_start: np.ndarray
    """Each token row's first character in its document's text."""
    financial_row: np.ndarray
    """Per token row: its document is financial text (the financial or the ag_business group)."""


def planted_docs(n_docs: int, per_doc: int) -> PlantedDocs:
    """Documents of ``per_doc`` words ``w0 w1 ...``; the first and third quarters are financial text."""
    quarter = n_docs // 4
    names = ("financial", "general", "ag_business", "ag_other")
    groups = {name: np.arange(i * quarter, (i + 1) * quarter) for i, name in enumerate(names)}
    financial_doc = np.zeros(n_docs, bool)
    financial_doc[groups["financial"]] = financial_doc[groups["ag_business"]] = True
    doc_of_row = np.repeat(np.arange(n_docs), per_doc)
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)],
                          "text": " ".join(f"w{j}" for j in range(per_doc)), "source": "synthetic"})
    char_start = np.tile(np.arange(per_doc) * 3, n_docs)
    return PlantedDocs(HeldoutSet(Corpus("synthetic", frame), groups), doc_of_row, char_start,
                       financial_doc[doc_of_row])


def concept_tokens(concepts: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` token rows made of the unit ``concepts`` ([n_concepts, d]): each concept on in 6% of the rows at
    an amplitude of 1-2, plus a little noise."""
    n_concepts, d = concepts.shape
    amp = (torch.rand(n, n_concepts, generator=g) < 0.06) * (1 + torch.rand(n, n_concepts, generator=g))
    return amp @ concepts + 0.02 * torch.randn(n, d, generator=g)
