"""The causal test as the analysis stage runs it at a layer (finsae.analysis.causal_layer), on planted truth
(tests/analysis/planted_causal.py): held-out "PhraseBank" sentences scored, other passages fitted (their
cached token rows and their [CLS] states), the warm start's changed latents ablated against random ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from planted_causal import (
    EVAL_TEXTS,
    N_LAYERS,
    PLANTED,
    PLANTED_LATENTS,
    logits,
    planted_sae,
    texts,
    twin_of,
)
from stage_runs import PAIR

from finsae.analysis.causal_layer import (
    CAUSAL_COLUMNS,
    CausalModels,
    build_inputs,
    causal_layer,
    fit_documents,
    task_sentences,
)
from finsae.analysis.config import CausalConfig
from finsae.analysis.heldout import HeldoutSet
from finsae.analysis.methods.causal import Causal
from finsae.data.corpus import Corpus
from finsae.data.phrasebank import LABELS
from finsae.errors import FinsaeError
from finsae.models.loading import hidden_states

CFG = CausalConfig(n_sentences=100, n_boot=400, ridge=1e-5, batch_size=64, n_random_draws=4)
FIT_PASSAGES = texts(120, 5)


def held_set(sentences: list[str], labels: list[str], passages: list[str]) -> HeldoutSet:
    """A held-out set of labelled PhraseBank sentences and other (financial) passages."""
    n = len(sentences)
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n + len(passages))],
                          "text": [*sentences, *passages],
                          "source": ["phrasebank"] * n + ["reuters"] * len(passages)})
    groups = {f"phrasebank_{lab}": np.flatnonzero(np.asarray(labels) == lab) for lab in LABELS}
    return HeldoutSet(Corpus("held", frame), {**groups, "financial": np.arange(n + len(passages))})


def cached_rows(model, held: HeldoutSet, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """What the activation cache holds at ``layer``: every real (non-special) token's state, and its
    document."""
    tok = model.tokenizer
    rows, docs = [], []
    for i, text in enumerate(held.corpus.frame["text"]):
        b = tok([text], return_tensors="pt")
        hs = hidden_states(model.encoder, b["input_ids"], b["attention_mask"], [layer]).layers[layer][0]
        real = ~torch.isin(b["input_ids"][0], torch.tensor(tok.all_special_ids))
        rows.append(hs[real].numpy())
        docs.append(np.full(int(real.sum()), i))
    return np.concatenate(rows), np.concatenate(docs)


def run_layer(models: CausalModels, held: HeldoutSet, layer: int, inputs=None, **ablation):
    inputs = inputs or build_inputs(models, held, range(N_LAYERS), CFG)
    (h_base, doc_of_row), (h_twin, _) = (cached_rows(m, held, layer) for m in (models.base, models.twin))
    return causal_layer(layer, inputs, h_base, h_twin, doc_of_row, held, CFG, **ablation)


def test_the_affine_patch_costs_accuracy_only_at_the_planted_layer(base):
    twin = twin_of(base, amplitude=2.0)
    predicted = [LABELS[c] for c in logits(twin, EVAL_TEXTS).argmax(1)]  # the twin's own answers: accuracy 1
    held = held_set(EVAL_TEXTS, predicted, FIT_PASSAGES)
    models = CausalModels(base, twin, {})
    inputs = build_inputs(models, held, range(N_LAYERS), CFG)
    assert set(inputs.fit_texts) <= set(FIT_PASSAGES) and len(inputs.fit_texts) == 83  # 2.5 × (32 + 1)
    results = {layer: run_layer(models, held, layer, inputs) for layer in range(N_LAYERS)}
    assert len(models.cls_maps) == 1  # one pass of both models fitted the [CLS] maps of every layer
    planted = results[PLANTED].row
    assert planted.causal_twin_accuracy == 1.0 and planted.causal_n_sentences == len(EVAL_TEXTS)
    assert planted.causal_accuracy_change_hi < 0 and planted.causal_dlogit_lo > 0
    for layer, res in results.items():
        table = res.table
        assert tuple(table.columns) == tuple(CAUSAL_COLUMNS) and table["layer"].eq(layer).all()
        assert set(table["intervention"]) == {"none", "patch_affine", "patch_base"}
        est = table.dropna(subset=["value"])  # nonaffine_share is NaN where the base patch moves nothing
        assert (est["lo"] <= est["value"] + 1e-12).all() and (est["value"] <= est["hi"] + 1e-12).all()
        if layer != PLANTED:
            assert res.row.causal_accuracy_change == 0 and res.row.causal_accuracy_change_lo == 0
            assert res.row.causal_dlogit < 1e-2 * planted.causal_dlogit, layer
        cell = Causal().findings_cell(pd.Series(res.row.columns()))
        assert cell.startswith("yes" if layer == PLANTED else "no"), (layer, cell)
        assert np.isnan(res.row.ablation_dlogit_diff)  # no warm start given: no ablation


def test_ablating_planted_changed_latents_moves_the_logits_more_than_random_ones(base):
    layer = 1
    predicted = [LABELS[c] for c in logits(base, EVAL_TEXTS).argmax(1)]
    held = held_set(EVAL_TEXTS, predicted, FIT_PASSAGES)
    models = CausalModels(base, base, {})
    sae = planted_sae(base, layer)
    res = run_layer(models, held, layer, sae=sae, changed=np.array(PLANTED_LATENTS))
    r = res.row
    assert r.ablation_n_latents == len(PLANTED_LATENTS) and r.ablation_p_random == 0
    assert r.ablation_dlogit_diff_lo > 0 and r.ablation_dlogit_changed > 2 * r.ablation_dlogit_random > 0
    ablations = {"ablate_changed", "ablate_random", "ablate_changed_minus_random"}
    assert ablations <= set(res.table["intervention"])
    assert abs(r.causal_accuracy_change) == 0  # the twin is the base: its affine image changes nothing
    assert "changed latents" in Causal().findings_cell(pd.Series(r.columns()))
    # at the last layer the head reads only [CLS], where no latent is ablated: no ablation (no power)
    last = N_LAYERS - 1
    top = run_layer(models, held, last, sae=planted_sae(base, last), changed=np.array(PLANTED_LATENTS))
    assert np.isnan(top.row.ablation_dlogit_diff) and np.isfinite(top.row.causal_dlogit)
    # changed latents that never fire on the sentences: nothing to ablate, the patch still runs
    with torch.no_grad():
        sae.b_enc[1] = -1e3
    quiet = run_layer(models, held, layer, sae=sae, changed=np.array([1]))
    assert np.isnan(quiet.row.ablation_dlogit_diff) and np.isfinite(quiet.row.causal_dlogit)
    assert not quiet.table["intervention"].str.startswith("ablate").any()


def test_scored_sentences_are_the_heads_classes_once_and_never_fitted():
    sentences = ["Profit rose.", "Sales fell.", "Nothing new.", "Mixed news.", "Mixed news.", "Costs fell."]
    labels = ["positive", "negative", "neutral", "positive", "negative", "negative"]
    held = held_set(sentences, labels, ["Some other passage.", "Profit rose."])
    got = task_sentences(held, 3, CFG)
    # "Mixed news." has two labels: out
    assert sorted(got.texts) == ["Costs fell.", "Nothing new.", "Profit rose.", "Sales fell."]
    assert dict(zip(got.texts, got.labels, strict=True))["Sales fell."] == LABELS.index("negative")
    two = task_sentences(held, 2, CFG)  # a two-class head (the SST-2 twin): no neutral sentence
    assert "Nothing new." not in two.texts and set(two.labels) == {0, 1}
    capped = task_sentences(held, 3, CausalConfig(n_sentences=2))
    again = task_sentences(held, 3, CausalConfig(n_sentences=2))
    assert len(capped.texts) == 2 and capped.texts == again.texts and (capped.labels == again.labels).all()
    # the fit passages: never a PhraseBank document (the passage "Profit rose." from elsewhere stays)
    assert fit_documents(held).tolist() == [6, 7]


def test_too_little_text_is_not_run(base):
    models = CausalModels(base, base, {})
    few = held_set(EVAL_TEXTS[:6], ["positive"] * 6, FIT_PASSAGES[:40])  # 40 passages < 83 for the [CLS] map
    assert build_inputs(models, few, [0], CFG) is None
    none = held_set([], [], FIT_PASSAGES)
    assert build_inputs(models, none, [0], CFG) is None


def _analysis(project_root, *overrides):
    from hydra import compose, initialize_config_dir

    from finsae.glue.schemas import register_schemas, validate

    register_schemas()
    with initialize_config_dir(str(project_root / "conf"), version_base="1.3"):
        return validate(compose("analyze", ["paths.output_dir=.", *PAIR, *overrides])).analysis


def test_the_knobs_are_one_nested_block_of_the_analysis_group(project_root):
    a = _analysis(project_root, "analysis.causal.n_sentences=50", "analysis.causal.enabled=false",
                  "analysis.causal.conditions=[affine,identity]").causal
    assert (a.n_sentences, a.conditions, a.enabled) == (50, ["affine", "identity"], False)
    assert _analysis(project_root).causal == CausalConfig()
    for override, says in (("analysis.causal.conditions=[base]", "analysis.causal.conditions"),
                           ("analysis.causal.cls_fit_per_dim=1.5", "analysis.causal.cls_fit_per_dim"),
                           ("analysis.causal.n_sentences=1", "analysis.causal.n_sentences"),
                           ("analysis.causal.ci=1", "analysis.causal.ci")):
        with pytest.raises(FinsaeError, match=says.replace(".", r"\.")):
            _analysis(project_root, override)
