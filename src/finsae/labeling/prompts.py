"""The prompts: explainer (a short label and a one-sentence description) and the detection and fuzzing
scorers. ``PROMPT_VERSION`` is part of every cache key: change any text here and bump it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from finsae.labeling.examples import Example

PROMPT_VERSION = "prompts-v3"
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
its activation on a 0-10 scale. Find what the marked words, and the sentences around them, have in common, in \
your own words: a label of at most 6 words and one sentence of description.

Answer with JSON only: {"label": "<at most 6 words>", "description": "<one sentence>"}."""

FEW_SHOT = (
    ("1. The Fed <<raised>> interest <<rates>> by a quarter point.\n   activations: raised 7, rates 10\n"
     "2. The ECB left its deposit <<rate>> unchanged.\n   activations: rate 9\n"
     "3. Markets expect two <<cuts>> this year.\n   activations: cuts 6",
     {"label": "central bank rate decisions",
      "description": "Fires on words about interest-rate moves by the Fed or other central banks."}),
    ("1. <<$AAPL>> looks strong into the close\n   activations: $AAPL 10\n"
     "2. Shares of GE (<<NYSE: GE>>) fell 3%.\n   activations: NYSE: 6, GE 8\n"
     "3. Loading up on <<$TSLA>> calls\n   activations: $TSLA 9",
     {"label": "stock ticker symbols",
      "description": "Fires on cashtags and ticker symbols in tweets and headlines."}),
)
"""Worked examples, given as earlier chat turns (a user turn of sentences, the assistant's JSON answer) rather
than inside the instructions, where a small model copies them verbatim. A label equal to one of theirs is
refused as a copy (``copied_example``)."""
FEW_SHOT_LABELS = frozenset(answer["label"].lower() for _, answer in FEW_SHOT)


def copied_example(label: str) -> bool:
    """Whether ``label`` is a few-shot example's label (what a small model answers when it copies)."""
    return label.strip().lower() in FEW_SHOT_LABELS


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
    shots = []
    for sentences, answer in FEW_SHOT:
        if not show_activations:
            sentences = "\n".join(line for line in sentences.splitlines() if "activations:" not in line)
        shots += [{"role": "user", "content": f"Sentences where the feature fires:\n{sentences}\n\nJSON answer:"},
                  {"role": "assistant", "content": json.dumps(answer)}]
    return [{"role": "system", "content": EXPLAIN_SYSTEM}, *shots,
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
