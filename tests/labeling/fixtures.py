"""Analysis artifacts written exactly in the analysis stage's schema (``finsae.analysis.contexts``, plus
``features.parquet`` and ``summary.json``), with planted keyword latents, random latents and latents to skip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.analysis.contexts import CONTEXT_COLUMNS, contexts_path

SUBJECTS = ["Shareholders", "The board", "Analysts", "The city council", "Local fans", "The chef", "Investors",
            "The museum", "Farmers", "The school", "Our reporter", "The mayor", "Residents", "The coach"]
VERBS = ["discussed", "welcomed", "criticised", "expected", "reported", "questioned", "praised", "ignored"]
OBJECTS = ["the new plan", "the weather forecast", "a football match", "the annual meeting", "a recipe for soup",
           "the election results", "the concert", "the train schedule", "the garden show", "the old bridge",
           "the film festival", "a chess tournament", "the library hours", "the harvest"]
TAILS = ["on Monday", "last week", "after the meeting", "in the morning", "despite the rain", "at noon",
         "before the holiday", "with some surprise"]
KEYWORDS = {0: "dividend", 1: "inflation", 2: "merger", 3: "earnings", 4: "bankruptcy", 5: "mortgage"}
"""Planted financial latents: each fires on its keyword only."""
CONTROLS = list(range(10, 18))
"""Non-financial latents that fire on a random word of random sentences."""
FEW = 6
"""A financial latent with too few activating examples (skipped)."""
NO_CONTEXT = 7
"""A financial latent without stored contexts (skipped)."""


def sentence(rng, keyword: str | None = None) -> tuple[list[str], list[float]]:
    words = [SUBJECTS[rng.integers(len(SUBJECTS))], VERBS[rng.integers(len(VERBS))]]
    words = " ".join(words).split()
    obj = OBJECTS[rng.integers(len(OBJECTS))].split()
    tail = TAILS[rng.integers(len(TAILS))].split()
    if keyword is not None:
        pos = rng.integers(3)
        kw = {0: ["the", keyword, "news"], 1: ["a", "surprising", keyword, "figure"], 2: ["the", keyword, "report"]}[pos]
        body = words + kw + ["and"] + obj + tail
    else:
        body = words + obj + tail
    body[-1] = body[-1] + "."
    acts = [0.0] * len(body)
    if keyword is not None:
        i = next(i for i, w in enumerate(body) if w.rstrip(".") == keyword)
        acts[i] = 1.0
    return body, acts


def latent_rows(latent: int, rng, keyword: str | None, n_top: int = 20, n_quant: int = 10, n_neg: int = 30,
                doc_base: int = 0) -> list[tuple]:
    rows = []
    strengths = np.sort(rng.uniform(0.5, 5.0, n_top + n_quant))[::-1]
    for k in range(n_top + n_quant):
        words, acts = sentence(rng, keyword)
        s = float(strengths[k])
        if keyword is None:  # a random latent: fires on one random word of a random sentence
            acts = [0.0] * len(words)
            acts[int(rng.integers(len(words)))] = 1.0
        acts = [a * s for a in acts]
        kind, rank = ("top", k) if k < n_top else ("quantile", k - n_top)
        rows.append((latent, kind, rank, f"d{doc_base + latent * 1000 + k}", "financial", words, acts, s))
    for k in range(n_neg):
        words, _ = sentence(rng, None)
        rows.append((latent, "negative", k, f"n{doc_base + latent * 1000 + k}", "general", words,
                     [0.0] * len(words), 0.0))
    return rows


def write_analysis(artifacts: Path, pair: str = "minilm_fin", base: str = "minilm", domain: str = "minilm_fin",
                   layers: tuple[int, ...] = (2,), seed: int = 0, keywords: dict | None = None,
                   controls: list[int] | None = None) -> Path:
    """Write artifacts/analysis/{pair}/ (summary.json, features.parquet, contexts/{model}/layer_{i}.parquet)."""
    keywords = KEYWORDS if keywords is None else keywords
    controls = CONTROLS if controls is None else controls
    folder = Path(artifacts) / "analysis" / pair
    folder.mkdir(parents=True, exist_ok=True)
    feats = []
    for mi, model in enumerate((base, domain)):
        for layer in layers:
            rng = np.random.default_rng([seed, mi, layer])
            rows = []
            for latent, kw in keywords.items():
                rows += latent_rows(latent, rng, kw)
            for latent in controls:
                rows += latent_rows(latent, rng, None)
            rows += latent_rows(FEW, rng, "dividend", n_top=3, n_quant=0)
            ctx = pd.DataFrame(rows, columns=list(CONTEXT_COLUMNS)).astype({"rank": "int32", "max_act": "float32"})
            path = contexts_path(folder, model, layer)
            path.parent.mkdir(parents=True, exist_ok=True)
            ctx.to_parquet(path, index=False)
            for latent in range(20):
                fin = latent in keywords or latent in (FEW, NO_CONTEXT)
                feats.append({"model": model, "layer": layer, "latent": latent, "financial": fin,
                              "specialized": (fin and model == domain) if model == domain else None,
                              "n_active_docs": 3 if latent == FEW else 30,
                              "auroc_broad": 0.9 if fin else 0.5, "auroc_genre": 0.8 if fin else 0.5})
    pd.DataFrame(feats).to_parquet(folder / "features.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps({"pair": pair, "base": base, "domain": domain,
                                                     "layers": list(layers), "tag": "default",
                                                     "seed_tag": "default_seed1"}))
    return folder


def planted_jobs(embed, cfg, planted: dict, random_latents: list, seed: int = 7):
    """Jobs (layer 2 of minilm) for latents planted on keywords (targets) and random latents (controls), their
    examples split as the stage splits them."""
    from finsae.labeling.examples import examples_of, latent_rng, split_examples
    from finsae.labeling.pipeline import LatentJob

    rng = np.random.default_rng(seed)
    rows = [r for lat, kw in planted.items() for r in latent_rows(lat, rng, kw)]
    rows += [r for lat in random_latents for r in latent_rows(lat, rng, None)]
    by_latent = examples_of(pd.DataFrame(rows, columns=list(CONTEXT_COLUMNS)))
    jobs = []
    for lat, exs in by_latent.items():
        role = "target" if lat in planted else "control"
        job = LatentJob("minilm", 2, lat, role, role == "target", False, 30, "minilm/layer_2/default/x")
        job.examples = split_examples(exs, n_explain=cfg.n_explain, n_explain_negatives=cfg.n_explain_negatives,
                                      n_score_activating=cfg.n_score_activating,
                                      n_score_random_negatives=cfg.n_score_random_negatives,
                                      n_score_hard_negatives=cfg.n_score_hard_negatives,
                                      rng=latent_rng(0, lat), embed=embed)
        jobs.append(job)
    return jobs
