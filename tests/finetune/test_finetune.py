"""The finance-twin recipe on the tiny model: data split, MLM masking, a few real steps end to end."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from finsae.finetune.summary import FinetuneMetrics, FinetuneSummary
from finsae.finetune import (
    LABELS,
    build_finetune_data,
    mask_tokens,
    masked_lm_from_encoder,
    stratified_hash_split,
)
from finsae.models import check_tokenizer_pair, get_spec, load_model


def test_stratified_hash_split_is_order_free_and_stratified():
    df = pd.DataFrame({"text": [f"s{i}" for i in range(300)], "label": [i % 3 for i in range(300)]})
    tr, te = stratified_hash_split(df, 0.2, seed=0)
    tr2, te2 = stratified_hash_split(df.sample(frac=1, random_state=1).reset_index(drop=True), 0.2, seed=0)
    assert set(te.text) == set(te2.text) and len(te) == 60
    assert te.label.value_counts().tolist() == [20, 20, 20]
    assert not set(te.text) & set(tr.text)
    _, te3 = stratified_hash_split(df, 0.2, seed=1)
    assert set(te3.text) != set(te.text)


def test_finetune_data_holds_out_phrasebank(data_dir):
    d = build_finetune_data(data_dir, test_frac=0.2, seed=0)
    assert not set(d.test.text) & set(d.train.text)
    assert set(d.test.source) == {"phrasebank"}
    assert 900 < len(d.test) < 1000  # 20% of the 4,846 50Agree sentences (minus duplicates)
    assert d.test.all_agree.sum() > 300
    assert set(d.train.label.unique()) == {0, 1, 2}
    # twitter bullish (1) must map to FinBERT's "positive" (0)
    from finsae.data.twitter_sentiment import load_twitter_sentiment

    tw = load_twitter_sentiment("train", data_dir)
    first_bull = tw.loc[tw.label == 1, "text"].iloc[0]
    assert d.train.loc[d.train.text == first_bull, "label"].iloc[0] == LABELS.index("positive")


def test_mask_tokens_never_masks_specials_or_pad():
    ids = torch.tensor([[101, 2000, 2001, 2002, 102, 0, 0]] * 200)
    att = (ids != 0).long()
    g = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(ids, att, 103, 30522, [0, 101, 102, 103], prob=0.5, generator=g)
    chosen = labels != -100
    assert not chosen[:, [0, 4, 5, 6]].any()
    assert 0.35 < chosen[:, 1:4].float().mean() < 0.65
    assert (masked[chosen] == 103).float().mean() > 0.7
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_mlm_shares_the_encoder():
    clf = load_model(get_spec("tiny"), kind="classifier").model
    mlm = masked_lm_from_encoder(clf.bert)
    w = clf.bert.encoder.layer[0].attention.self.query.weight
    assert mlm.bert.encoder.layer[0].attention.self.query.weight is w
    assert mlm.cls.predictions.decoder.weight is clf.bert.embeddings.word_embeddings.weight


@pytest.mark.slow
def test_finetune_stage_on_tiny(data_dir, project_root, tmp_path):
    cmd = [sys.executable, "train.py", "task=finetune", "model=tiny", "logger=csv", f"paths.artifacts={tmp_path}",
           f"hydra.run.dir={tmp_path}/run", "finetune.out_name=tiny_fin", "finetune.max_steps=3",
           "finetune.max_train_examples=64", "finetune.epochs=2", "finetune.mlm_steps=2", "finetune.mlm_batch_size=4",
           "trainer.progress_bar=false"]
    r = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "models" / "tiny_fin"
    m = FinetuneMetrics.read(out).to_dict()  # through the stage's contract
    # Same seed, same metrics: a second run into another artifact folder reproduces every number.
    again = [c.replace("out_name=tiny_fin", "out_name=tiny_fin2").replace(f"{tmp_path}/run", f"{tmp_path}/run2")
             for c in cmd]
    r2 = subprocess.run(again, cwd=project_root, capture_output=True, text=True, timeout=600, check=False)
    assert r2.returncode == 0, r2.stderr[-3000:]
    m2 = FinetuneMetrics.read(tmp_path / "models" / "tiny_fin2").to_dict()
    for key in ("phrasebank_test_accuracy", "phrasebank_test_macro_f1", "probe_test_accuracy", "mlm_final_loss",
                "phrasebank_test_confusion"):
        assert m[key] == m2[key], key
    for key in ("phrasebank_test_accuracy", "phrasebank_test_macro_f1", "probe_test_accuracy",
                "phrasebank_test_allagree_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    assert m["train_steps"] == 3 and m["mlm_steps"] == 2
    assert np.asarray(m["phrasebank_test_confusion"]).sum() == m["phrasebank_test_n"]
    summary = FinetuneSummary.read(out)  # the typed record skip_if_present and the report read
    assert summary.phrasebank_test_accuracy == m["phrasebank_test_accuracy"] and summary.train_steps == 3
    assert FinetuneSummary.read(tmp_path / "run") == summary
    r3 = subprocess.run([*cmd, "finetune.skip_if_present=true"], cwd=project_root, capture_output=True, text=True,
                        timeout=600, check=False)
    assert r3.returncode == 0 and "skipping" in r3.stdout, r3.stderr[-2000:]
    assert (tmp_path / "run" / "plots" / "confusion_finetuned.png").exists()
    # The saved twin loads as model=minilm_fin would, and passes the pair check against the base.
    twin = load_model(get_spec("minilm_fin", path=str(out)))
    base = load_model(get_spec("tiny"))
    assert check_tokenizer_pair(base.tokenizer, twin.tokenizer)
    assert twin.model.config.id2label[0] == "positive"
    clf = load_model(get_spec("minilm_fin", path=str(out)), kind="classifier").model
    assert clf.classifier.out_features == 3
