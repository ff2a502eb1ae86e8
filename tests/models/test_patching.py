"""Splicing into a layer: identity changes nothing, zeroing hurts, and loss recovered is ordered."""

import torch

from finsae.models import get_spec, load_model
from finsae.models.patching import downstream_score, patched_layer

TEXTS = ["Operating profit rose to EUR 13.1 mn.", "Shares fell sharply after the warning.",
         "The board meets on Tuesday.", "Net sales decreased by 5 %."] * 2


def test_identity_patch_is_exact_and_only_touches_real_tokens():
    m = load_model(get_spec("tiny"))
    b = m.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    ref = m.model(**b).last_hidden_state
    pos = b["attention_mask"].bool() & (b["input_ids"] != 101) & (b["input_ids"] != 102)
    with patched_layer(m.model, 0, lambda r: r, pos):
        same = m.model(**b).last_hidden_state
    assert torch.allclose(ref, same, atol=1e-6)
    seen = {}

    def spy(rows):
        seen["n"] = rows.shape[0]
        return rows * 0

    with patched_layer(m.model, 1, spy, pos):
        out = m.model(**b).last_hidden_state
    assert seen["n"] == int(pos.sum())
    assert torch.allclose(out[pos], torch.zeros_like(out[pos]))
    assert not torch.allclose(out[~pos], torch.zeros_like(out[~pos]))


def test_loss_recovered_for_each_task_kind():
    for kind, labels in (("encoder", None), ("classifier", [0, 1, 2, 2] * 2), ("mlm", None)):
        m = load_model(get_spec("tiny"), kind=kind)
        perfect = downstream_score(m, TEXTS, 0, lambda r: r, labels=labels)
        assert abs(perfect.sae - perfect.clean) < 1e-5, kind
        assert abs(perfect.loss_recovered - 1.0) < 1e-3 and abs(perfect.loss_recovered_all - 1.0) < 1e-3, kind
        zeroed = downstream_score(m, TEXTS, 0, torch.zeros_like, labels=labels)
        assert abs(zeroed.loss_recovered) < 1e-6 and zeroed.zero != zeroed.clean, kind
        assert abs(zeroed.loss_recovered_all) < 1e-6 and zeroed.zero_all != zeroed.zero, kind
        noisy = downstream_score(m, TEXTS, 0, lambda r: r + 0.5 * torch.randn_like(r), labels=labels)
        assert noisy.sae != noisy.clean, kind
        if kind == "encoder":  # KL to the clean run is > 0 for any real change
            assert noisy.task == "cls_kl" and noisy.clean == 0.0 and noisy.loss_recovered < 1.0
    assert perfect.task == "mlm_ce"


def test_real_token_score_leaves_cls_clean_and_is_undefined_at_the_last_layer():
    m = load_model(get_spec("tiny"), kind="encoder")
    last = m.num_layers - 1

    def break_everything(r):
        return r.flip(-1)  # a permutation of the features (a constant shift would leave the softmax alone)

    score = downstream_score(m, TEXTS, last, break_everything)
    # the final [CLS] cannot see real tokens patched after the last block: real-token score undefined ...
    assert score.sae == 0.0 and score.zero == 0.0 and score.loss_recovered != score.loss_recovered  # NaN
    # ... while the all-positions score, which replaces [CLS] itself, is defined and penalises the damage
    assert score.zero_all > 0 and score.sae_all > 0 and score.loss_recovered_all < 1.0
