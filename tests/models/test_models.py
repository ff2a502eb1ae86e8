"""Model loading: layer convention, offline behaviour of hub models, the tokenizer-pair check."""

import time

import pytest
import torch

from finsae.errors import ConfigError, FinsaeError, OfflineModelError
from finsae.models import check_layer, check_tokenizer_pair, get_spec, hidden_states, load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model(get_spec("tiny"))


def test_layer_convention_matches_hf_hidden_states(tiny):
    b = tiny.tokenizer(["Net sales rose 12%.", "Shares fell"], padding=True, return_tensors="pt")
    hs = hidden_states(tiny.model, b["input_ids"], b["attention_mask"], [-1, 0, 1])
    with torch.inference_mode():
        ref = tiny.model(**b, output_hidden_states=True).hidden_states
    assert torch.equal(hs.layers[-1], ref[0])
    assert torch.equal(hs.layers[0], ref[1])
    assert torch.equal(hs.layers[1], ref[2])
    assert hs.layers[1].shape == (2, b["input_ids"].shape[1], 32)


def test_a_shallow_layer_runs_only_the_blocks_it_needs_and_gives_the_same_bits():
    fresh = load_model(get_spec("tiny"))  # nothing has run it yet: a cut first pass must not break later ones
    b = fresh.tokenizer(["Net sales rose 12%.", "Shares fell"], padding=True, return_tensors="pt")
    blocks = fresh.model.encoder.layer
    ran = []
    hook = blocks[1].register_forward_hook(lambda *a: ran.append(1))
    try:
        cut = {layer: hidden_states(fresh.model, b["input_ids"], b["attention_mask"], [layer]).layers[layer]
               for layer in (0, -1)}
        assert not ran  # block 1 never ran
        whole = hidden_states(fresh.model, b["input_ids"], b["attention_mask"], [-1, 0, 1])
        assert ran
    finally:
        hook.remove()
    with torch.inference_mode():
        ref = fresh.model(**b, output_hidden_states=True).hidden_states
    for layer in (-1, 0):
        assert torch.equal(cut[layer], ref[layer + 1])
    for layer in (-1, 0, 1):
        assert torch.equal(whole.layers[layer], ref[layer + 1])
    leftover = [f for m in fresh.model.modules() for f in m._forward_hooks.values()
                if "_bert_states" in getattr(f, "__qualname__", "")]
    assert not leftover  # the cut's own hooks are gone


def test_check_layer_bounds(tiny):
    assert check_layer(-1, tiny.num_layers) == -1
    assert check_layer(1, tiny.num_layers) == 1
    for bad in (2, -2, 99):
        with pytest.raises(ConfigError, match="outside the model"):
            check_layer(bad, tiny.num_layers)


def test_tiny_is_deterministic_and_seeded():
    a, b, c = (load_model(get_spec("tiny", seed=s)) for s in (0, 0, 1))
    assert a.weights_hash == b.weights_hash != c.weights_hash
    pa = dict(a.model.named_parameters())
    assert all(torch.equal(p, pa[n]) for n, p in b.model.named_parameters())


def test_packaged_minilm_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = load_model(get_spec("minilm"))
    assert (m.num_layers, m.d_model) == (6, 384)
    assert len(m.tokenizer) == 30522


@pytest.mark.parametrize("name", ["bert_base", "finbert"])
def test_hub_models_fail_fast_offline(monkeypatch, tmp_path, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    t0 = time.time()
    with pytest.raises(OfflineModelError, match="model.path"):
        load_model(get_spec(name))
    assert time.time() - t0 < 10


def test_missing_artifact_model_says_how_to_make_it(tmp_path):
    with pytest.raises(FinsaeError, match="task=finetune"):
        load_model(get_spec("minilm_fin"), artifacts=tmp_path)


@pytest.mark.parametrize("name", ["minilm_sst2", "minilm_fin_s2"])
def test_the_control_twins_are_artifacts_made_by_their_recipe_files(tmp_path, project_root, name):
    """Issue 33's control twins: registered, each with a model config, and a missing one names its recipe."""
    with pytest.raises(FinsaeError, match=rf"task=finetune \+finetune={name}`"):
        load_model(get_spec(name), artifacts=tmp_path)
    assert (project_root / "conf" / "finetune" / f"{name}.yaml").is_file()
    assert f"name: {name}" in (project_root / "conf" / "model" / f"{name}.yaml").read_text()


def test_bad_local_path(tmp_path):
    with pytest.raises(OfflineModelError, match="config.json"):
        load_model(get_spec("finbert", path=str(tmp_path)))


def test_pair_check_accepts_same_vocab_and_refuses_other(tiny, tmp_path):
    mini = load_model(get_spec("minilm"))
    assert check_tokenizer_pair(tiny.tokenizer, mini.tokenizer)
    # A tokenizer with a different vocabulary file must be refused.
    vocab = [line.rstrip("\n") for line in open(mini.tokenizer.vocab_file, encoding="utf-8")]
    vocab[2000], vocab[2001] = vocab[2001], vocab[2000]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    from transformers import BertTokenizer

    other = BertTokenizer(str(tmp_path / "vocab.txt"))
    with pytest.raises(ConfigError, match="tokenizers differ"):
        check_tokenizer_pair(mini.tokenizer, other)
