"""Encoder models: named specs, loading (online or off), hidden states, pair checks."""

from finsae.models.loading import (
    EMB_LAYER,
    HiddenStates,
    LoadedModel,
    base_encoder,
    check_layer,
    check_tokenizer_pair,
    hidden_states,
    load_model,
    load_tokenizer,
    task_kind,
    tokenizer_fingerprint,
)
from finsae.models.registry import (BUILTIN, ModelSpec, get_spec, hub_reachable, known_models,
                                     packaged_minilm_dir)

__all__ = [
    "BUILTIN", "EMB_LAYER", "HiddenStates", "LoadedModel", "ModelSpec", "base_encoder", "check_layer",
    "check_tokenizer_pair", "get_spec", "hidden_states", "hub_reachable", "known_models", "load_model",
    "load_tokenizer", "packaged_minilm_dir", "task_kind", "tokenizer_fingerprint",
]
