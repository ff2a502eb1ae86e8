"""Entry points whose stage is planned but not built yet exit with one clear line instead of pretending."""

from __future__ import annotations

from finsae.errors import FinsaeError

PLANNED = {
    "analyze": "matching and comparing SAE features across the pair, layer by layer",
    "label": "labeling financial features with Qwen2.5-7B-Instruct over vLLM and scoring the labels",
    "backtest": "LightGBM on SAE + price features out of sample, and a backtest with costs",
}


def refuse(stage: str) -> None:
    raise FinsaeError(
        f"the {stage} stage ({PLANNED[stage]}) is not built yet; it lands with its own issue. "
        f"What exists today: `python train.py task=finetune` and `python train.py model=... layer=...`."
    )
