"""The prompts: explainer (a short label and a one-sentence description) and the detection and fuzzing
scorers. ``PROMPT_VERSION`` is part of every cache key: change any text here and bump it."""

from __future__ import annotations

from collections.abc import Sequence

from finsae.labeling.examples import Example

PROMPT_VERSION = "prompts-v2"
"""Bump on any change to a prompt, a schema or the few-shot examples below (cached answers then miss)."""

LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "maxLength": 80}, "description": {"type": "string", "maxLength": 300}},
    "required": ["label", "description"],
    "additionalProperties": False,
}
"""The explainer's answer (vLLM structured outputs / ``response_format`` json_schema)."""

ANSWERS_SCHEMA = {
    "type": "object",
    "properties": {"answers": {"type": "array", "items": {"type": "integer", "enum": [0, 1]}}},
    "required": ["answers"],
    "additionalProperties": False,
}
"""A scorer's answer: one 0/1 per numbered example (``answers_schema(n)`` pins the count)."""


def answers_schema(n: int) -> dict:
    """``ANSWERS_SCHEMA`` with exactly ``n`` answers (a constrained decoder then cannot miscount)."""
    items = {**ANSWERS_SCHEMA["properties"]["answers"], "minItems": n, "maxItems": n}
    return {**ANSWERS_SCHEMA, "properties": {"answers": items}}

LABEL_PREFILL = '{"label": "'
"""Where local backends (hf, vllm) start the assistant's answer, so even a small model writes the label first."""

EXPLAIN_SYSTEM = """\
You explain features of a language model trained on financial and general text. You see sentences in which \
one feature fires; the words where it fires most are marked <<like this>>, and each marked word may come with \
its activation on a 0-10 scale. Find what the marked words, and the sentences around them, have in common.

Answer with JSON only: {"label": "<at most 6 words>", "description": "<one sentence>"}.

Examples of good answers:
{"label": "central bank rate decisions", "description": "Fires on words about interest-rate moves by the Fed or other central banks, such as 'hike' and 'cut'."}
{"label": "quarterly earnings beats", "description": "Fires on reports that a company's quarterly profit or revenue came in above analysts' expectations."}
{"label": "stock ticker symbols", "description": "Fires on cashtags and ticker symbols like $AAPL or NYSE: GE in tweets and headlines."}
{"label": "negative sentiment about losses", "description": "Fires on words describing falling prices, losses or write-downs."}
"""

DETECTION_SYSTEM = """\
A feature of a language model has this explanation. For each numbered sentence, decide whether the feature \
fires anywhere in it (1) or not (0). Answer with JSON only: {"answers": [one 0 or 1 per sentence, in order]}."""

FUZZING_SYSTEM = """\
A feature of a language model has this explanation. In each numbered sentence some words are marked \
<<like this>>. Decide whether the marked words are ones on which the feature fires, as its explanation says \
(1), or unrelated words (0). Answer with JSON only: {"answers": [one 0 or 1 per sentence, in order]}."""


def render_example(i: int, e: Example, show_activations: bool, scale_max: float) -> str:
    line = f"{i}. {e.marked()}"
    if show_activations:
        acts = e.activation_scale(scale_max)
        if acts:
            line += "\n   activations: " + ", ".join(f"{w} {a}" for w, a in acts)
    return line


def explain_messages(examples: Sequence[Example], show_activations: bool = True) -> list[dict]:
    """Chat messages asking for a label of the latent that fires on ``examples``."""
    scale_max = max((max(e.acts, default=0.0) for e in examples), default=0.0)
    body = "\n".join(render_example(i + 1, e, show_activations, scale_max) for i, e in enumerate(examples))
    return [{"role": "system", "content": EXPLAIN_SYSTEM},
            {"role": "user", "content": f"Sentences where the feature fires:\n{body}\n\nJSON answer:"}]


def _label_line(label: str, description: str) -> str:
    return f"Explanation: {label}" + (f" - {description}" if description else "")


def detection_messages(label: str, description: str, texts: Sequence[str]) -> list[dict]:
    """Chat messages asking which of the plain ``texts`` activate the latent explained by ``label``."""
    body = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))
    return [{"role": "system", "content": DETECTION_SYSTEM},
            {"role": "user", "content": f"{_label_line(label, description)}\n\nSentences:\n{body}\n\nJSON answer:"}]


def fuzzing_messages(label: str, description: str, marked: Sequence[str]) -> list[dict]:
    """Chat messages asking, for each marked sentence, whether its marks are where the latent fires."""
    body = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(marked))
    return [{"role": "system", "content": FUZZING_SYSTEM},
            {"role": "user", "content": f"{_label_line(label, description)}\n\nSentences:\n{body}\n\nJSON answer:"}]


INTRUDER_SYSTEM = """\
A feature of a language model fires on all but one of the numbered sentences below. Find the intruder: the one \
sentence that does not share what the others have in common. Answer with JSON only: {"intruder": <its number>}."""


def intruder_schema(n: int) -> dict:
    """An intruder answer: one sentence number in 1..n."""
    return {"type": "object", "properties": {"intruder": {"type": "integer", "minimum": 1, "maximum": n}},
            "required": ["intruder"], "additionalProperties": False}


def intruder_messages(texts: Sequence[str]) -> list[dict]:
    """Chat messages asking which of the plain ``texts`` is the one the feature does not fire on."""
    body = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))
    return [{"role": "system", "content": INTRUDER_SYSTEM},
            {"role": "user", "content": f"Sentences:\n{body}\n\nJSON answer:"}]


def label_text(label: str, description: str) -> str:
    """What the embedding scorer embeds for a label."""
    return f"{label}. {description}".strip() if description else label
