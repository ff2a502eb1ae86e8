"""A bert-base-shaped pair with random weights (BertConfig(): 12 layers x 768, vocabulary 30,522) under the
hub ids of the paper pair, in a Hugging Face cache folder of its own: every stage loads ``bert_base`` and
``finbert`` through its real hub path (``snapshot_download(local_files_only=True)``), offline. The tokenizer
files are the packaged MiniLM's, which is bert-base-uncased's uncased WordPiece vocabulary."""

from __future__ import annotations

import shutil
from pathlib import Path

from finsae.models.registry import BUILTIN, TOKENIZER_FILES, packaged_minilm_dir

COMMIT = "0" * 40  # the snapshot's (fake) revision


def write_random_pair(hub_cache: Path) -> Path:
    """``bert_base`` and ``finbert`` as random bert-base-shaped models in ``hub_cache`` (give it as
    ``HF_HUB_CACHE``); the twin differs from the base by its init seed, so the two are not the same model."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tok_src = packaged_minilm_dir()
    for seed, name in enumerate(("bert_base", "finbert")):
        hf_id = BUILTIN[name].hf_id
        repo = hub_cache / ("models--" + hf_id.replace("/", "--"))
        snap = repo / "snapshots" / COMMIT
        if (snap / "config.json").is_file():
            continue
        torch.manual_seed(seed)
        config = BertConfig(num_labels=3, id2label={0: "positive", 1: "negative", 2: "neutral"},
                            label2id={"positive": 0, "negative": 1, "neutral": 2})
        model = BertForSequenceClassification(config) if name == "finbert" else BertModel(config)
        model.save_pretrained(str(snap))
        for f in TOKENIZER_FILES:
            if (tok_src / f).exists():
                shutil.copy2(tok_src / f, snap / f)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(COMMIT)
    return hub_cache
