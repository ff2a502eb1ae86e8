"""The real Qwen2.5-Coder-1.5B run's recorded explainer answers (``recorded/qwen_cpu_explain_answers.json``,
copied from the answer cache of ``label.py label=qwen_cpu``; docs/labels.md): each raw answer parses to the label
that was recorded, and no label or description is a few-shot example's (the small model once copied the example
answer verbatim) or the generic control label."""

import json
from pathlib import Path

import pytest

from finsae.labeling.config import LabelConfig
from finsae.labeling.parsing import parse_label
from finsae.labeling.prompts import FEW_SHOT, FEW_SHOT_LABELS, copied_example

RECORDED = json.loads((Path(__file__).parent / "recorded" / "qwen_cpu_explain_answers.json").read_text())
ANSWERS = RECORDED["answers"]


def test_the_recording_is_the_real_model_run():
    assert RECORDED["explainer"] == "openai:qwen2.5-coder-1.5b-instruct"
    assert len(ANSWERS) >= 4 and all(a["raw"] for a in ANSWERS)


@pytest.mark.parametrize("answer", ANSWERS, ids=[a["label"] for a in ANSWERS])
def test_each_raw_answer_parses_to_its_recorded_label(answer):
    parsed = parse_label(answer["raw"])  # a chat server starts the answer itself: no prefill
    assert (parsed.label, parsed.description) == (answer["label"], answer["description"])


def test_no_recorded_label_is_an_example_or_the_generic_label():
    examples = {a["description"].strip().lower() for _, a in FEW_SHOT}
    generic = LabelConfig().generic_label.lower()
    labels = [parse_label(a["raw"]).label for a in ANSWERS]
    assert not any(copied_example(lab) for lab in labels)
    assert not {lab.lower() for lab in labels} & (FEW_SHOT_LABELS | {generic})
    assert not {a["description"].strip().lower() for a in ANSWERS} & examples
