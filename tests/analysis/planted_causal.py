"""Planted truth for the causal test: a tiny random BERT classifier (the base) and a twin that is the same
network with one layer's output transformed (affinely, or affinely plus a non-affine feature) and the
transform undone at the next layer's input, so the two differ only at that layer and give the same logits;
and an SAE on a layer whose planted latents fire on every token."""

from __future__ import annotations

import copy

import numpy as np
import torch
from transformers import BertForSequenceClassification

from finsae.models import get_spec
from finsae.models.loading import LoadedModel, hidden_states, load_tokenizer
from finsae.models.patching import layer_module
from finsae.models.registry import tiny_config
from finsae.sae import SaeConfig, TopKSAE

D, N_LAYERS, PLANTED = 32, 4, 2
WORDS = ("profit sales rose fell shares quarter board outlook strong weak bank loan margin costs growth "
         "the a of in to company market investors expects decline increase revenue net operating dividend "
         "warning record results cut jobs plant order deal stock price year percent euro million").split()


def texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(4, 14))) for _ in range(n)]


FIT_TEXTS, EVAL_TEXTS = texts(80, 1), texts(48, 2)


def planted_base() -> LoadedModel:
    """The tiny random BERT classifier at a wider init (0.2: its logits depend on the text) with the classes
    re-centred, so that its predictions are spread over the 3 classes."""
    spec = get_spec("tiny", tiny_layers=N_LAYERS)
    cfg = tiny_config(spec)
    cfg.initializer_range = 0.2
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg).eval()
    loaded = LoadedModel(spec, model, load_tokenizer(spec), "tiny", "classifier")
    with torch.no_grad():
        loaded.model.classifier.bias -= torch.from_numpy(logits(loaded, FIT_TEXTS).mean(0))
    return loaded


def replace_forward(layer: torch.nn.Module, before=None, after=None) -> None:
    """Give ``layer`` a forward that maps its input by ``before`` and its output by ``after``. Not forward
    hooks: transformers records ``output_hidden_states`` with forward hooks of its own, installed on a model's
    first such call, and a hook registered before those would change the output after they recorded it."""
    parent = type(layer)

    def forward(self, hidden_states, *args, **kwargs):
        out = parent.forward(self, before(hidden_states) if before else hidden_states, *args, **kwargs)
        if after is None:
            return out
        return (after(out[0]), *out[1:]) if isinstance(out, tuple) else after(out)

    layer.__class__ = type(f"Planted{parent.__name__}", (parent,), {"forward": forward})


def twin_of(base: LoadedModel, amplitude: float, seed: int = 3) -> LoadedModel:
    """The base with ``y = x M + c + amplitude · u · (y0·v)²`` at PLANTED's output (u ⟂ v, y0 = x M + c)
    and the exact inverse at the next layer's input (at amplitude 0, an affine image of the base there)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(D, D, generator=g))[0]
    m = q * torch.linspace(0.5, 2.0, D)
    m_inv, c = torch.linalg.inv(m), torch.randn(D, generator=g)
    u, v = q[:, 0], q[:, 1]  # orthonormal: the added feature along u never changes y·v

    def forward(x):
        y0 = x @ m + c
        return y0 + amplitude * u * (y0 @ v).unsqueeze(-1) ** 2

    def inverse(y):
        return (y - amplitude * u * (y @ v).unsqueeze(-1) ** 2 - c) @ m_inv

    model = copy.deepcopy(base.model)
    replace_forward(layer_module(model, PLANTED), after=forward)
    replace_forward(layer_module(model, PLANTED + 1), before=inverse)
    return LoadedModel(base.spec, model, base.tokenizer, "planted", "classifier")


def logits(loaded: LoadedModel, texts: list[str]) -> np.ndarray:
    b = loaded.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return loaded.model(**b).logits.numpy()


PLANTED_LATENTS = (5, 17, 40)


def planted_sae(twin: LoadedModel, layer: int) -> TopKSAE:
    """A random SAE on the twin's layer whose PLANTED_LATENTS fire on every token with a large activation."""
    sae = TopKSAE(SaeConfig(d_in=D, num_latents=96, k=8, seed=0))
    b = twin.tokenizer(FIT_TEXTS, padding=True, return_tensors="pt")
    hs = hidden_states(twin.encoder, b["input_ids"], b["attention_mask"], [layer]).layers[layer]
    sae.init_from_sample(hs[b["attention_mask"].bool()])
    with torch.no_grad():
        sae.b_enc[list(PLANTED_LATENTS)] = 3.0
    return sae
