"""Load encoders and tokenizers, read per-layer hidden states, and check that a pair shares a tokenizer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from finsae.errors import ConfigError, FinsaeError
from finsae.models.registry import (
    ModelSpec,
    directory_hash,
    model_source_dir,
    packaged_minilm_dir,
    tiny_config,
)

EMB_LAYER = -1


@dataclass
class LoadedModel:
    """A model ready for inference, plus what a cache key needs to know about it."""

    spec: ModelSpec
    """The spec it was loaded from."""
    model: torch.nn.Module
    """The Hugging Face module (``BertModel`` for ``kind=encoder``, a task model otherwise)."""
    tokenizer: object
    """Its tokenizer (fast, with offsets)."""
    weights_hash: str
    """Content hash of the weights (random models: hash of config + seed)."""
    kind: str
    """``encoder``, ``classifier`` or ``mlm``."""

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def encoder(self) -> torch.nn.Module:
        """The bare ``BertModel`` inside whatever task model was loaded."""
        return base_encoder(self.model)


def base_encoder(model: torch.nn.Module) -> torch.nn.Module:
    for attr in ("bert", "base_model"):
        inner = getattr(model, attr, None)
        if inner is not None and inner is not model:
            return inner
    return model


def load_tokenizer(spec: ModelSpec, artifacts: Path | None = None):
    from transformers import AutoTokenizer

    src = packaged_minilm_dir() if spec.source == "random" and not spec.path else model_source_dir(spec, artifacts)
    return AutoTokenizer.from_pretrained(str(src))


def load_model(spec: ModelSpec, artifacts: Path | None = None, kind: str = "encoder",
               num_labels: int | None = None) -> LoadedModel:
    """Load ``spec`` in eval mode. ``kind``: ``encoder`` (BertModel), ``classifier`` or ``mlm``. ``num_labels``:
    a classifier's head size where it is made new (random weights, or a head the saved model lacks); a saved
    classifier keeps its own (the SST-2 control twin has 2 classes, the finance twin 3) unless it is given."""
    import transformers

    classes = {
        "encoder": transformers.AutoModel,
        "classifier": transformers.AutoModelForSequenceClassification,
        "mlm": transformers.AutoModelForMaskedLM,
    }
    if kind not in classes:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of {sorted(classes)}")
    tokenizer = load_tokenizer(spec, artifacts)
    if spec.source == "random" and not spec.path:
        cfg = tiny_config(spec, num_labels=3 if num_labels is None else num_labels)
        torch.manual_seed(spec.seed)
        model = classes[kind].from_config(cfg)
        whash = hashlib.sha256(f"{cfg.to_json_string()}|seed={spec.seed}|{kind}".encode()).hexdigest()[:16]
    else:
        src = model_source_dir(spec, artifacts)
        extra = {"num_labels": num_labels} if kind == "classifier" and num_labels is not None else {}
        try:
            model = classes[kind].from_pretrained(src, **extra)
        except OSError as e:
            raise FinsaeError(f"could not load model {spec.name!r} from {src}: {e}") from e
        whash = directory_hash(Path(src)) if Path(src).is_dir() else spec.hf_id
    model.eval()
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, weights_hash=whash, kind=kind)


def model_config(spec: ModelSpec, artifacts: Path | None = None):
    """The model's Hugging Face config, without loading its weights (layer count and width, before any work)."""
    if spec.source == "random" and not spec.path:
        return tiny_config(spec)
    from transformers import AutoConfig

    from finsae.models.registry import model_source_dir

    return AutoConfig.from_pretrained(model_source_dir(spec, artifacts))


def task_kind(spec: ModelSpec, artifacts: Path | None = None) -> str:
    """Which head the model's own config declares: ``classifier``, ``mlm``, or none (``encoder``)."""
    if spec.source == "random" and not spec.path:
        return "encoder"
    archs = " ".join(model_config(spec, artifacts).architectures or [])
    if "SequenceClassification" in archs:
        return "classifier"
    if "MaskedLM" in archs or "ForPreTraining" in archs:
        return "mlm"
    return "encoder"


def check_layer(layer: int, num_layers: int) -> int:
    """Validate a layer index against the convention (``-1`` = embeddings, ``0..L-1`` = blocks)."""
    if not isinstance(layer, int) or layer < EMB_LAYER or layer >= num_layers:
        raise ConfigError(f"layer={layer} is outside the model: valid layers are -1 (embeddings) .. {num_layers - 1}")
    return layer


class HiddenStates(NamedTuple):
    """Per-layer hidden states of one batch."""

    layers: dict[int, torch.Tensor]
    """layer index -> [batch, seq, d_model] tensor (see the module's layer convention)."""
    attention_mask: torch.Tensor
    """[batch, seq] 1 for real tokens (incl. [CLS]/[SEP]), 0 for [PAD]."""


@torch.inference_mode()
def hidden_states(encoder: torch.nn.Module, input_ids, attention_mask, layers) -> HiddenStates:
    """Run ``encoder`` once and return the requested layers (all from one forward pass).

    A BERT-family encoder (``encoder.embeddings``, ``encoder.encoder.layer``) stops after the deepest requested
    block: its hidden states are the embedding and block outputs themselves (nothing is normalised after the last
    block), taken with forward hooks, so they are the same bits as a full pass at a fraction of the cost (layer 3
    of 6 costs 4 blocks). Other models run whole."""
    layers = [int(i) for i in layers]
    blocks = getattr(getattr(encoder, "encoder", None), "layer", None)
    if isinstance(blocks, torch.nn.ModuleList) and hasattr(encoder, "embeddings") and max(layers) + 1 < len(blocks):
        return HiddenStates(_bert_states(encoder, blocks, input_ids, attention_mask, layers), attention_mask)
    out = encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hs = out.hidden_states
    return HiddenStates({i: hs[i + 1] for i in layers}, attention_mask)


class _Enough(Exception):
    """Raised by a forward hook once the deepest requested block has run."""


def _bert_states(encoder, blocks, input_ids, attention_mask, layers: list[int]) -> dict[int, torch.Tensor]:
    got: dict[int, torch.Tensor] = {}

    def keep(i):
        def hook(_module, _inputs, output):
            got[i] = output[0] if isinstance(output, tuple) else output
        return hook

    def stop(_module, _inputs, _output):
        raise _Enough

    modules = {i: (encoder.embeddings if i == EMB_LAYER else blocks[i]) for i in set(layers)}
    handles = [m.register_forward_hook(keep(i)) for i, m in modules.items()]
    deepest = max(layers)
    handles.append((encoder.embeddings if deepest == EMB_LAYER else blocks[deepest]).register_forward_hook(stop))
    try:
        encoder(input_ids=input_ids, attention_mask=attention_mask)
    except _Enough:
        pass
    finally:
        for h in handles:
            h.remove()
    return {i: got[i] for i in layers}


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the vocabulary (token -> id) and the lower-casing rule."""
    vocab = tokenizer.get_vocab()
    items = sorted(vocab.items(), key=lambda kv: kv[1])
    h = hashlib.sha256()
    for tok, idx in items:
        h.update(f"{idx}\t{tok}\n".encode())
    h.update(repr(getattr(tokenizer, "do_lower_case", None)).encode())
    return h.hexdigest()[:16]


def check_tokenizer_pair(tok_a, tok_b, names: tuple[str, str] = ("base", "domain")) -> str:
    """Refuse a pair whose tokenizers differ: SAE features are compared token row by token row."""
    fa, fb = tokenizer_fingerprint(tok_a), tokenizer_fingerprint(tok_b)
    if fa != fb:
        va, vb = tok_a.get_vocab(), tok_b.get_vocab()
        diff = len(set(va.items()) ^ set(vb.items()))
        raise ConfigError(
            f"the pair's tokenizers differ ({names[0]} vocab {len(va)}, {names[1]} vocab {len(vb)}, "
            f"{diff} differing entries): a base/domain pair must share one vocabulary file"
        )
    return fa
